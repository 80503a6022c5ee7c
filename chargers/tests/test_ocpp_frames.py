"""Frames through ``CentralSystem`` in process (no socket): the Heartbeat fast path answers and
logs exactly as the generic path does, and anything that is not exactly a Heartbeat CALL still
goes through the library's schema validation."""

import json

import pytest
from ocpp.messages import CallResult, _validate_payload

from chargers.ocpp import log
from chargers.ocpp.handlers import CentralSystem, _is_heartbeat


class FakeConnection:
    heartbeat_interval = 300

    def __init__(self):
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)

    def refresh_registration(self) -> None:
        pass


@pytest.fixture
def logged():
    """The log buffer, emptied before and after (its flusher is stopped: nothing is written)."""
    log._buffer.clear()
    yield log._buffer
    if log._flusher is not None:
        log._flusher.cancel()
    log._buffer.clear()


async def _exchange(frame: str) -> list:
    connection = FakeConnection()
    central = CentralSystem("CP-FRAMES", connection, charge_point_id=None)
    await central.route_message(frame)
    assert len(connection.sent) == 1
    return json.loads(connection.sent[0])


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ([2, "a", "Heartbeat", {}], True),
        ([2, "a", "Heartbeat", {"x": 1}], False),
        ([2, "a", "Heartbeat", []], False),
        ([2, 7, "Heartbeat", {}], False),
        ([2, "a", "Heartbeat"], False),
        ([3, "a", "Heartbeat", {}], False),
        ([2, "a", "BootNotification", {}], False),
        ({"0": 2}, False),
        (None, False),
    ],
)
def test_only_an_exact_heartbeat_call_takes_the_fast_path(frame, expected):
    assert _is_heartbeat(frame) is expected


async def test_the_fast_heartbeat_answer_is_a_valid_heartbeat_result_and_both_frames_are_logged(logged):
    answer = await _exchange(json.dumps([2, "hb-1", "Heartbeat", {}]))
    assert answer[:2] == [3, "hb-1"]
    assert answer[2]["currentTime"].endswith("Z")
    _validate_payload(CallResult("hb-1", answer[2], action="Heartbeat"), "1.6")  # raises if not
    assert [(row[2], row[3], row[4], row[5]) for row in logged] == [
        ("in", 2, "hb-1", "Heartbeat"),
        ("out", 3, "hb-1", ""),
    ]


async def test_a_heartbeat_with_a_payload_still_gets_the_schema_callerror(logged):
    answer = await _exchange(json.dumps([2, "hb-2", "Heartbeat", {"unexpected": True}]))
    assert answer[:3] == [4, "hb-2", "FormatViolation"]
    assert [(row[2], row[3], row[4]) for row in logged] == [("in", 2, "hb-2"), ("out", 4, "hb-2")]


async def test_a_frame_that_is_not_json_is_logged_undescribed_and_answered(logged):
    answer = await _exchange("[2, 'not json'")
    assert answer[:3] == [4, "-1", "FormatViolation"]
    assert logged[0][2:6] == ("in", None, "", "")
