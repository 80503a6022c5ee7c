"""Billing periods: local-calendar days, weeks (from Monday) or months, as UTC instants. Pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from billing.choices import BillingPeriod


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def period_containing(period: str, time_zone: str, moment: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` in UTC of the period that holds ``moment``, cut at local midnights."""
    zone = ZoneInfo(time_zone)
    day = moment.astimezone(zone).date()
    if period == BillingPeriod.DAILY:
        first, following = day, day + timedelta(days=1)
    elif period == BillingPeriod.WEEKLY:
        first = day - timedelta(days=day.weekday())
        following = first + timedelta(days=7)
    elif period == BillingPeriod.MONTHLY:
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown billing period {period!r}")
    return _local_midnight(first, zone), _local_midnight(following, zone)


def last_closed_period(period: str, time_zone: str, now: datetime) -> tuple[datetime, datetime]:
    """The latest period that ended at or before ``now``."""
    current_start, _ = period_containing(period, time_zone, now)
    return period_containing(period, time_zone, current_start - timedelta(microseconds=1))
