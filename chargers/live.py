"""Live status in the cache (Redis in production): what the API shows without a query per
connector. The database holds the same facts; the cache is the fast copy, refreshed on every
change and rebuilt from the database when a key is missing.

One key per fact, each written whole by the one event that changes it — never read, modified
and written back, so a status and a poll racing on the same charger cannot lose each other:

- ``live:cp:<pk>`` → {"online", "seen"} (connection and heartbeats);
- ``live:cp:<pk>:c:0`` → {"status", "error_code"} (the charger itself, connector 0);
- ``live:cp:<pk>:c:<n>`` → {"status", "error_code", "at"} (connector n).

Readers get the old shape, ``{"online", "seen", "status", "error_code", "connectors": {"n": …}}``,
for a page of chargers in one ``get_many``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.core.cache import cache

TTL = 7 * 24 * 3600


def _key(charge_point_id: int) -> str:
    return f"live:cp:{charge_point_id}"


def _connector_key(charge_point_id: int, connector_id: int) -> str:
    return f"live:cp:{charge_point_id}:c:{connector_id}"


def _keys(connectors_by_charger: dict[int, Iterable[int]]) -> list[str]:
    """Every key of these chargers: their own, connector 0's and the given connectors'."""
    keys = []
    for pk, connector_ids in connectors_by_charger.items():
        keys += [_key(pk), _connector_key(pk, 0), *(_connector_key(pk, n) for n in connector_ids)]
    return keys


def charger_online(charge_point_id: int, online: bool, at: datetime) -> None:
    cache.set(_key(charge_point_id), {"online": online, "seen": at.isoformat()}, TTL)


def connector_status(
    charge_point_id: int, connector_id: int, status: str, error_code: str, at: datetime
) -> None:
    entry = {"status": status, "error_code": error_code}
    if connector_id != 0:
        entry["at"] = at.isoformat()
    cache.set(_connector_key(charge_point_id, connector_id), entry, TTL)


def many(connectors_by_charger: dict[int, Iterable[int]]) -> dict[int, dict]:
    """Live entries for many chargers (and the given connector numbers of each) in one round trip.

    A charger appears when any of its keys exists; what is missing, the API reads from the
    database.
    """
    found = cache.get_many(_keys(connectors_by_charger))
    result = {}
    for pk, connector_ids in connectors_by_charger.items():
        entry = {**found.get(_key(pk), {}), **found.get(_connector_key(pk, 0), {})}
        connectors = {
            str(n): found[_connector_key(pk, n)] for n in connector_ids if _connector_key(pk, n) in found
        }
        if entry or connectors:
            result[pk] = {**entry, "connectors": connectors}
    return result


def forget(connectors_by_charger: dict[int, Iterable[int]]) -> None:
    """Drop chargers' entries (they went offline): readers use the database until they speak."""
    cache.delete_many(_keys(connectors_by_charger))
