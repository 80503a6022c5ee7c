"""Pricing engine: cost per session as meter values grow, against a start/stop-only session.

Chargers usually send a meter value every minute, so a long session brings hundreds of
readings. The engine must stay linear in them (it was quadratic once). No database: the
engine and the CDR JSON only, in this process, on sessions charging from 16:07 in Berlin
(a 17:00 to 20:00 peak to split) with a meter value a minute, and a 10-minute parked
stretch every hour.

Tariffs: the billing benchmark's (time-of-day energy prices and a flat fee), and one with a
power restriction at 22 kW, which the session's power (11 to 28 kW, minute by minute) crosses
twice every 7 minutes: each crossing is a cut and a new period, since prices change there.
The same tariff with its threshold at 50 kW shows a power restriction that is not crossed:
then readings cut only where charging starts or stops.
The baseline is the same tariff on a session with no meter values but its start and stop.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.billing_bench import TARIFF
from billing.ocpi import tariff_from_ocpi
from billing.pricing import Reading, price_session
from billing.services import _dumps

READINGS = (0, 60, 240, 480)
START = datetime(2026, 10, 5, 14, 7, tzinfo=UTC)  # 16:07 in Berlin (CEST)
POWER_TARIFF = {
    "id": "BENCH-POWER",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": "0.59", "vat": "19", "step_size": 1}],
         "restrictions": {"min_power": "22"}},
        {"price_components": [{"type": "ENERGY", "price": "0.39", "vat": "19", "step_size": 1},
                              {"type": "PARKING_TIME", "price": "6.00", "vat": "19", "step_size": 60}]},
    ],
}  # fmt: skip
# The same, with a threshold the session's power (11 to 28 kW) never reaches: a reading cuts
# only where charging starts or stops, as without a power restriction.
STEADY_POWER_TARIFF = {
    **POWER_TARIFF,
    "elements": [
        {**POWER_TARIFF["elements"][0], "restrictions": {"min_power": "50"}},
        POWER_TARIFF["elements"][1],
    ],
}


def _session(minutes: int) -> tuple[datetime, list[Reading]]:
    """One-minute readings over ``minutes`` (0: only the stop reading, after 2 hours)."""
    if minutes == 0:
        return START + timedelta(hours=2), [Reading(START + timedelta(hours=2), 22_000)]
    wh, readings = 0, []
    for minute in range(1, minutes + 1):
        if minute % 60 < 50:  # ten parked minutes an hour
            wh += 180 + minute % 7 * 40  # 11 to 28 kW
        readings.append(Reading(START + timedelta(minutes=minute, seconds=3), wh))
    return readings[-1].timestamp, readings


def _time(tariff, minutes: int) -> tuple[float, int, int]:
    stop, readings = _session(minutes)
    repeats = max(20, 4000 // max(minutes, 1))
    started = time.perf_counter()
    for _ in range(repeats):
        priced = price_session(
            tariff=tariff, started_at=START, stopped_at=stop, meter_start_wh=0, readings=readings,
            time_zone="Europe/Berlin",
        )  # fmt: skip
        text = _dumps(priced.as_json())
    return (time.perf_counter() - started) / repeats * 1000, len(priced.periods), len(text)


def run() -> None:
    header = f"{'ms/session':>11} {'x start/stop':>13} {'periods':>8} {'CDR JSON B':>11}"
    print(f"{'tariff':22} {'meter values':>12} {header}")
    for name, data in (
        ("time of day (bench)", TARIFF),
        ("power, crossed often", POWER_TARIFF),
        ("power, never crossed", STEADY_POWER_TARIFF),
    ):
        tariff = tariff_from_ocpi(data)
        baseline = None
        for minutes in READINGS:
            ms, periods, size = _time(tariff, minutes)
            baseline = baseline or ms
            print(f"{name:22} {minutes:12,} {ms:11.3f} {ms / baseline:13.1f} {periods:8} {size:11,}")
