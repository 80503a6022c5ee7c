"""The live-status cache: one key per fact, written without reading, read per page at once."""

from datetime import UTC, datetime

import pytest

from chargers import live

AT = datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_writes_never_read_so_racing_writers_cannot_lose_each_other(monkeypatch):
    def no_reads(*args, **kwargs):
        raise AssertionError("a live-status write read the cache (read-modify-write)")

    monkeypatch.setattr(live.cache, "get", no_reads)
    monkeypatch.setattr(live.cache, "get_many", no_reads)
    # A status and the poll's "online" for the same charger, in either order: both stay.
    live.connector_status(7, 1, "Charging", "NoError", AT)
    live.charger_online(7, True, AT)
    live.connector_status(7, 0, "Faulted", "GroundFailure", AT)
    monkeypatch.undo()

    assert live.many({7: [1, 2]}) == {
        7: {
            "online": True,
            "seen": AT.isoformat(),
            "status": "Faulted",
            "error_code": "GroundFailure",
            "connectors": {"1": {"status": "Charging", "error_code": "NoError", "at": AT.isoformat()}},
        }
    }


@pytest.mark.django_db
def test_forget_drops_the_charger_and_its_connectors():
    live.charger_online(8, True, AT)
    live.connector_status(8, 1, "Charging", "NoError", AT)
    live.connector_status(9, 1, "Available", "NoError", AT)
    live.forget({8: [1]})
    assert live.many({8: [1], 9: [1]}) == {
        9: {"connectors": {"1": {"status": "Available", "error_code": "NoError", "at": AT.isoformat()}}}
    }
