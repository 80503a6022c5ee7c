"""Validators shared by the apps' models (and so by their API serializers and admin forms)."""

from __future__ import annotations

import functools
import zoneinfo

from django.core.exceptions import ValidationError


@functools.cache
def _known_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    """An IANA time zone name this system knows ("Europe/Berlin", "UTC").

    Periods close at local midnight and tariffs read local time in it: an unknown name would
    fail every billing cycle and pricing run that meets it, so it is refused where it is typed.
    """
    if value not in _known_time_zones():
        raise ValidationError(
            "%(value)s is not a known IANA time zone (e.g. Europe/Berlin, UTC).",
            code="invalid_time_zone",
            params={"value": value},
        )
