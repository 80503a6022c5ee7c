"""Charger → central system, through a real WebSocket with the ``ocpp`` library as the charger."""

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async

from accounts.models import IdToken
from chargers.choices import SessionStatus
from chargers.models import (
    ChargePoint,
    ChargingSession,
    Connector,
    MeterValue,
    OcppMessage,
    StatusChange,
    TransactionAnomaly,
)
from chargers.simulator import basic_auth_header, connected
from chargers.tests.conftest import run, wait_until
from chargers.tests.factories import CHARGER_PASSWORD, ChargePointFactory, ConnectorFactory, IdTokenFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def charger():
    charge_point = ChargePointFactory(identity="CP-TEST-1")
    ConnectorFactory(charge_point=charge_point, connector_id=1)
    ConnectorFactory(charge_point=charge_point, connector_id=2)
    return charge_point


@pytest.fixture
def token():
    return IdTokenFactory(uid="RFID-OK")


# --- handshake ------------------------------------------------------------------------


async def _handshake(url: str, subprotocols, headers) -> str:
    try:
        async with websockets.connect(url, subprotocols=subprotocols, additional_headers=headers) as ws:
            return f"open:{ws.subprotocol}"
    except websockets.InvalidStatus as error:
        return f"refused:{error.response.status_code}"


def test_handshake_needs_the_ocpp16_subprotocol(ocpp_server, charger):
    headers = basic_auth_header(charger.identity, CHARGER_PASSWORD)
    url = f"{ocpp_server.url}/{charger.identity}"
    assert run(_handshake(url, ["ocpp1.6"], headers)) == "open:ocpp1.6"
    assert run(_handshake(url, ["ocpp2.0.1"], headers)) == "refused:403"
    assert run(_handshake(url, None, headers)) == "refused:403"


def test_handshake_checks_the_chargers_password(ocpp_server, charger):
    url = f"{ocpp_server.url}/{charger.identity}"
    assert run(_handshake(url, ["ocpp1.6"], basic_auth_header(charger.identity, "wrong"))) == "refused:403"
    assert run(_handshake(url, ["ocpp1.6"], {})) == "refused:403"
    # Basic user must be the identity itself
    assert run(_handshake(url, ["ocpp1.6"], basic_auth_header("CP-OTHER", CHARGER_PASSWORD))) == "refused:403"


def test_unknown_identity_is_refused(ocpp_server, charger):
    url = f"{ocpp_server.url}/CP-NOBODY"
    assert run(_handshake(url, ["ocpp1.6"], basic_auth_header("CP-NOBODY", "x"))) == "refused:403"
    assert not ChargePoint.objects.filter(identity="CP-NOBODY").exists()


def test_pending_registration_admits_unknown_chargers_as_pending(tmp_path, django_db_blocker, channel_prefix):
    from chargers.tests.conftest import start_server, stop_server

    server = start_server(
        tmp_path / "pending.log", OCPP_PENDING_REGISTRATION="1", CHANNEL_LAYER_PREFIX=channel_prefix
    )
    try:

        async def scenario():
            async with connected(server.url, "CP-NEW-1", None) as cp:
                return await cp.boot()

        boot = run(scenario())
    finally:
        stop_server(server)
    assert boot.status == "Pending"
    assert ChargePoint.objects.get(identity="CP-NEW-1").registration_status == "Pending"


# --- boot, heartbeat, status ----------------------------------------------------------


def test_boot_heartbeat_and_status(ocpp_server, charger):
    def statuses():
        return dict(Connector.objects.filter(charge_point=charger).values_list("connector_id", "status"))

    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            boot = await cp.boot(vendor="ACME", model="FastOne")
            beat = await cp.heartbeat()
            await cp.status(1, "Available")
            await cp.status(2, "Faulted", error_code="GroundFailure")
            await cp.status(0, "Available")
            return boot, beat, await sync_to_async(statuses)()

    boot, beat, while_connected = run(scenario())
    assert boot.status == "Accepted"
    assert boot.interval == 60
    assert beat.current_time.endswith("Z")
    assert while_connected == {1: "Available", 2: "Faulted"}
    charger.refresh_from_db()
    assert charger.vendor == "ACME"
    assert charger.model == "FastOne"
    assert charger.status == "Available"
    assert Connector.objects.get(charge_point=charger, connector_id=2).error_code == "GroundFailure"
    reported = StatusChange.objects.filter(charge_point=charger).exclude(info="offline")
    assert reported.count() == 3
    # the socket closed when the scenario ended: offline at once, connectors unavailable
    assert wait_until(lambda: not ChargePoint.objects.get(pk=charger.pk).is_online)
    assert wait_until(lambda: statuses() == {1: "Unavailable", 2: "Unavailable"})


def test_an_old_queued_status_does_not_overwrite_a_newer_one(ocpp_server, charger):
    # Offline queues replay in any order; the newest timestamp wins, history keeps both.
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.status(1, "Charging", timestamp="2026-11-27T10:05:00Z")
            await cp.status(1, "Available", timestamp="2026-11-27T10:00:00Z")
            return await sync_to_async(
                lambda: Connector.objects.get(charge_point=charger, connector_id=1).status
            )()

    assert run(scenario()) == "Charging"
    assert (
        StatusChange.objects.filter(charge_point=charger, connector_id=1).exclude(info="offline").count() == 2
    )


def test_a_new_connector_reported_by_the_charger_is_created(ocpp_server, charger):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.status(3, "Available")
            return await sync_to_async(
                lambda: Connector.objects.get(charge_point=charger, connector_id=3).status
            )()

    assert run(scenario()) == "Available"


# --- authorize and transactions -------------------------------------------------------


def test_authorize_answers_from_the_id_token(ocpp_server, charger, token):
    IdTokenFactory(uid="RFID-BLOCKED", status=IdToken.Status.BLOCKED)
    IdTokenFactory(uid="RFID-OLD", expires_at="2020-01-01T00:00:00Z")

    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            return [
                (await cp.authorize(tag)).id_tag_info["status"]
                for tag in ["RFID-OK", "RFID-BLOCKED", "RFID-OLD", "RFID-UNKNOWN"]
            ]

    assert run(scenario()) == ["Accepted", "Blocked", "Expired", "Invalid"]


def test_a_whole_session_with_meter_values(ocpp_server, charger, token):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            start = await cp.start_transaction(1, "RFID-OK")
            await cp.meter_tick(1, 3600)  # one hour at 22 kW
            stop = await cp.stop_transaction(1)
            return start, stop

    start, stop = run(scenario())
    assert start.id_tag_info["status"] == "Accepted"
    session = ChargingSession.objects.get(pk=start.transaction_id)
    assert session.status == SessionStatus.COMPLETED
    assert session.meter_start_wh == 1_000_000
    assert session.meter_stop_wh == 1_022_000
    assert session.energy_wh == 22_000
    assert session.stop_reason == "Local"
    assert session.id_token == token
    assert not session.needs_review
    assert stop.id_tag_info["status"] == "Accepted"
    assert MeterValue.objects.filter(session=session, measurand="Power.Active.Import").count() == 1


def test_repeated_start_transaction_gets_the_same_transaction_id(ocpp_server, charger, token):
    # The charger lost our answer and sends the very same StartTransaction again.
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            first = await cp.call(_start(1, "RFID-OK", 5000, "2026-11-27T09:00:00Z"))
            again = await cp.call(_start(1, "RFID-OK", 5000, "2026-11-27T09:00:00Z"))
            return first, again

    first, again = run(scenario())
    assert first.transaction_id == again.transaction_id
    assert again.id_tag_info["status"] == "Accepted"
    assert ChargingSession.objects.count() == 1


def test_second_start_on_a_busy_connector_or_with_a_charging_token_is_concurrent_tx(
    ocpp_server, charger, token
):
    IdTokenFactory(uid="RFID-TWO")

    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            first = await cp.call(_start(1, "RFID-OK", 100, "2026-11-27T09:00:00Z"))
            busy = await cp.call(_start(1, "RFID-TWO", 200, "2026-11-27T09:01:00Z"))
            same_tag = await cp.call(_start(2, "RFID-OK", 300, "2026-11-27T09:02:00Z"))
            return first, busy, same_tag

    first, busy, same_tag = run(scenario())
    assert first.id_tag_info["status"] == "Accepted"
    assert busy.id_tag_info["status"] == "ConcurrentTx"
    assert same_tag.id_tag_info["status"] == "ConcurrentTx"
    # every start got its own transactionId (OCPP requires one); only one is live
    assert len({first.transaction_id, busy.transaction_id, same_tag.transaction_id}) == 3
    assert ChargingSession.objects.filter(status=SessionStatus.ACTIVE).count() == 1
    assert ChargingSession.objects.get(
        pk=first.transaction_id
    ).needs_review  # flagged: charger thinks it is free


def test_stop_transaction_is_always_answered_and_recorded_once(ocpp_server, charger, token):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            start = await cp.call(_start(1, "RFID-OK", 1000, "2026-11-27T09:00:00Z"))
            stop = _stop(start.transaction_id, 4000, "2026-11-27T10:00:00Z")
            first = await cp.call(stop)
            repeat = await cp.call(_stop(start.transaction_id, 9999, "2026-11-27T11:00:00Z"))
            unknown = await cp.call(_stop(-1, 5000, "2026-11-27T10:00:00Z"))
            never_issued = await cp.call(_stop(987654, 5000, "2026-11-27T10:00:00Z"))
            return start, first, repeat, unknown, never_issued

    start, *answers = run(scenario())
    assert all(answer is not None for answer in answers)
    session = ChargingSession.objects.get(pk=start.transaction_id)
    assert session.meter_stop_wh == 4000  # the repeat changed nothing
    assert session.energy_wh == 3000
    anomalies = TransactionAnomaly.objects.filter(charge_point=charger).order_by("transaction_id")
    assert [a.transaction_id for a in anomalies] == [-1, 987654]


def test_meter_stop_minus_one_keeps_energy_from_meter_values_and_flags(ocpp_server, charger, token):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            start = await cp.call(_start(1, "RFID-OK", 1000, "2026-11-27T09:00:00Z"))
            await cp.call(_meter(1, start.transaction_id, "2026-11-27T09:30:00Z", "3.5", "kWh"))
            await cp.call(_stop(start.transaction_id, -1, "2026-11-27T10:00:00Z"))
            return start

    start = run(scenario())
    session = ChargingSession.objects.get(pk=start.transaction_id)
    assert session.energy_wh == 2500  # 3.5 kWh register = 3500 Wh, minus meterStart 1000
    assert session.needs_review
    assert any("meterStop" in reason for reason in session.review_reasons)


def test_offline_queue_replayed_out_of_order_with_duplicates(ocpp_server, charger, token):
    # After reconnecting, a charger replays what it queued: late, duplicated, out of order.
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            start = await cp.call(_start(1, "RFID-OK", 10_000, "2026-11-27T08:00:00Z"))
            tx = start.transaction_id
            await cp.call(_meter(1, tx, "2026-11-27T08:20:00Z", "14000"))
            await cp.call(_meter(1, tx, "2026-11-27T08:10:00Z", "12000"))  # older, arrives later
            await cp.call(_meter(1, tx, "2026-11-27T08:20:00Z", "14000"))  # duplicate
            await cp.call(_stop(tx, 15_000, "2026-11-27T08:30:00Z"))
            return tx

    tx = run(scenario())
    session = ChargingSession.objects.get(pk=tx)
    energy = MeterValue.objects.filter(session=session, measurand="Energy.Active.Import.Register")
    assert list(energy.values_list("value", flat=True)) == [12000, 14000]  # stored once, in time order
    assert session.energy_wh == 5000
    assert session.started_at.isoformat() == "2026-11-27T08:00:00+00:00"  # its own timestamps
    assert not session.needs_review


def test_energy_never_goes_backwards_a_meter_reset_is_flagged(ocpp_server, charger, token):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            start = await cp.call(_start(1, "RFID-OK", 50_000, "2026-11-27T08:00:00Z"))
            tx = start.transaction_id
            await cp.call(_meter(1, tx, "2026-11-27T08:10:00Z", "58000"))
            await cp.call(_meter(1, tx, "2026-11-27T08:20:00Z", "300"))  # the register was reset
            return tx

    tx = run(scenario())
    session = ChargingSession.objects.get(pk=tx)
    assert session.energy_wh == 8000
    assert session.needs_review
    assert any("backwards" in reason for reason in session.review_reasons)


def test_unset_charger_clock_is_flagged(ocpp_server, charger, token):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            return await cp.call(_start(1, "RFID-OK", 0, "1970-01-01T00:00:10Z"))

    start = run(scenario())
    session = ChargingSession.objects.get(pk=start.transaction_id)
    assert session.needs_review
    assert any("clock" in reason for reason in session.review_reasons)


def test_all_ten_charger_messages_are_answered(ocpp_server, charger, token):
    from ocpp.v16 import call

    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            return [
                await cp.boot(),
                await cp.heartbeat(),
                await cp.status(1, "Available"),
                await cp.authorize("RFID-OK"),
                start := await cp.call(_start(1, "RFID-OK", 0, "2026-11-27T08:00:00Z")),
                await cp.call(_meter(1, start.transaction_id, "2026-11-27T08:10:00Z", "100")),
                await cp.call(_stop(start.transaction_id, 200, "2026-11-27T08:20:00Z")),
                await cp.call(call.DataTransfer(vendor_id="com.example", message_id="hello", data="x")),
                await cp.call(call.DiagnosticsStatusNotification(status="Uploaded")),
                await cp.call(call.FirmwareStatusNotification(status="Installed")),
            ]

    answers = run(scenario())
    assert len(answers) == 10
    assert all(answer is not None for answer in answers)  # None would be a CALLERROR
    assert answers[7].status == "UnknownVendorId"
    charger.refresh_from_db()
    assert charger.diagnostics_status == "Uploaded"
    assert charger.firmware_status == "Installed"


# --- malformed frames -----------------------------------------------------------------


async def _raw_exchange(url: str, identity: str, frames: list[str]) -> list:
    headers = basic_auth_header(identity, CHARGER_PASSWORD)
    answers = []
    async with websockets.connect(
        f"{url}/{identity}", subprotocols=["ocpp1.6"], additional_headers=headers
    ) as ws:
        for frame in frames:
            await ws.send(frame)
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        # still open: a good frame after the bad ones is answered normally
        await ws.send(json.dumps([2, "ok-1", "Heartbeat", {}]))
        answers.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    return answers


def test_malformed_frames_get_the_right_callerror_and_the_connection_stays(ocpp_server, charger):
    frames = [
        "{this is not json",
        json.dumps([2, "u-2", "NoSuchAction", {}]),
        json.dumps([2, "u-3", "BootNotification", {"chargePointVendor": "x"}]),  # model missing
        json.dumps(
            [
                2,
                "u-4",
                "StatusNotification",
                {"connectorId": "one", "errorCode": "NoError", "status": "Available"},
            ]
        ),
        json.dumps([2, "u-5", "Heartbeat", {"unexpected": True}]),
        json.dumps({"not": "a list"}),
        json.dumps(
            [
                2,
                "u-7",
                "MeterValues",
                {
                    "connectorId": 1,
                    "meterValue": [{"timestamp": "2026-11-27T08:00:00Z", "sampledValue": [{"value": "abc"}]}],
                },
            ]
        ),
    ]
    answers = run(_raw_exchange(ocpp_server.url, charger.identity, frames))
    kinds = [(a[0], a[1], a[2]) for a in answers[:-1]]
    assert kinds == [
        (4, "-1", "FormatViolation"),
        (4, "u-2", "NotImplemented"),
        (4, "u-3", "ProtocolError"),
        (4, "u-4", "TypeConstraintViolation"),
        (4, "u-5", "FormatViolation"),
        (4, "-1", "ProtocolError"),
        (4, "u-7", "PropertyConstraintViolation"),
    ]
    assert answers[-1][0] == 3
    assert answers[-1][1] == "ok-1"
    assert not MeterValue.objects.exists()  # nothing half-written


def test_every_frame_is_in_the_message_log(ocpp_server):
    # Its own identity: the server's log buffer may still hold other tests' frames.
    charger = ChargePointFactory(identity="CP-LOG-ONLY")

    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.boot()
            await cp.heartbeat()

    run(scenario())
    logged = wait_until(lambda: OcppMessage.objects.filter(identity=charger.identity).count() >= 4)
    assert logged
    rows = list(OcppMessage.objects.filter(identity=charger.identity).order_by("id"))
    assert [(r.direction, r.message_type, r.action) for r in rows] == [
        ("in", 2, "BootNotification"),
        ("out", 3, ""),
        ("in", 2, "Heartbeat"),
        ("out", 3, ""),
    ]
    assert rows[0].unique_id == rows[1].unique_id


def test_reconnect_takes_over_the_identity(ocpp_server, charger):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as old:
            await old.boot()
            async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as new:
                await new.boot()
                await asyncio.wait_for(old._connection.wait_closed(), 5)
                closed_code = old._connection.close_code
                beat = await new.heartbeat()
                online = await sync_to_async(lambda: ChargePoint.objects.get(pk=charger.pk).is_online)()
                return closed_code, beat, online

    closed_code, beat, online = run(scenario())
    assert closed_code == 4000
    assert beat is not None
    assert online  # the old socket closing did not mark the charger offline


# --- message builders -----------------------------------------------------------------


def _start(connector_id, id_tag, meter_start, timestamp):
    from ocpp.v16 import call

    return call.StartTransaction(
        connector_id=connector_id, id_tag=id_tag, meter_start=meter_start, timestamp=timestamp
    )


def _stop(transaction_id, meter_stop, timestamp):
    from ocpp.v16 import call

    return call.StopTransaction(
        meter_stop=meter_stop, timestamp=timestamp, transaction_id=transaction_id, id_tag="RFID-OK"
    )


def _meter(connector_id, transaction_id, timestamp, value, unit="Wh"):
    from ocpp.v16 import call

    return call.MeterValues(
        connector_id=connector_id,
        transaction_id=transaction_id,
        meter_value=[{"timestamp": timestamp, "sampledValue": [{"value": value, "unit": unit}]}],
    )


def test_an_action_the_charger_may_not_send_is_not_supported(ocpp_server, charger):
    # Reset is a real OCPP 1.6 action, but one the central system sends, never receives.
    answers = run(
        _raw_exchange(ocpp_server.url, charger.identity, [json.dumps([2, "r-1", "Reset", {"type": "Hard"}])])
    )
    assert answers[0][:3] == [4, "r-1", "NotSupported"]


def test_a_dead_socket_is_noticed_by_ping_timeout(ocpp_server, charger):
    # A charger that vanished without closing (power cut, NAT dropped): its process is frozen,
    # so it answers no WebSocket ping. The test server pings every 5 s with a 5 s timeout.
    import os
    import signal
    import subprocess
    import sys

    script = f"""
import asyncio, base64, json, websockets
async def main():
    auth = base64.b64encode(b"{charger.identity}:{CHARGER_PASSWORD}").decode()
    async with websockets.connect("{ocpp_server.url}/{charger.identity}", subprotocols=["ocpp1.6"],
                                  additional_headers={{"Authorization": "Basic " + auth}}) as ws:
        boot = {{"chargePointVendor": "X", "chargePointModel": "Y"}}
        await ws.send(json.dumps([2, "b1", "BootNotification", boot]))
        await ws.recv()
        print("booted", flush=True)
        await asyncio.sleep(600)
asyncio.run(main())
"""
    frozen = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert frozen.stdout.readline().strip() == "booted"
        assert ChargePoint.objects.get(pk=charger.pk).is_online
        os.kill(frozen.pid, signal.SIGSTOP)
        assert wait_until(lambda: not ChargePoint.objects.get(pk=charger.pk).is_online, timeout=30)
    finally:
        frozen.kill()
        frozen.wait()
