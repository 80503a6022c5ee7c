"""Live status in the cache (Redis in production): what the API shows without a query per
connector. The database holds the same facts; the cache is the fast copy, refreshed on every
change and rebuilt from the database when a key is missing.

One key per charger: ``live:cp:<pk>`` → {"online", "seen", "status", "connectors": {id: {...}}}.
"""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache

TTL = 7 * 24 * 3600


def _key(charge_point_id: int) -> str:
    return f"live:cp:{charge_point_id}"


def _get(charge_point_id: int) -> dict:
    return cache.get(_key(charge_point_id)) or {"connectors": {}}


def charger_online(charge_point_id: int, online: bool, at: datetime) -> None:
    entry = _get(charge_point_id)
    entry["online"] = online
    entry["seen"] = at.isoformat()
    cache.set(_key(charge_point_id), entry, TTL)


def connector_status(
    charge_point_id: int, connector_id: int, status: str, error_code: str, at: datetime
) -> None:
    entry = _get(charge_point_id)
    if connector_id == 0:
        entry["status"] = status
        entry["error_code"] = error_code
    else:
        entry.setdefault("connectors", {})[str(connector_id)] = {
            "status": status,
            "error_code": error_code,
            "at": at.isoformat(),
        }
    cache.set(_key(charge_point_id), entry, TTL)


def many(charge_point_ids: list[int]) -> dict[int, dict]:
    """Live entries for many chargers in one round trip."""
    found = cache.get_many([_key(pk) for pk in charge_point_ids])
    return {pk: found[_key(pk)] for pk in charge_point_ids if _key(pk) in found}


def forget(charge_point_ids: list[int]) -> None:
    cache.delete_many([_key(pk) for pk in charge_point_ids])
