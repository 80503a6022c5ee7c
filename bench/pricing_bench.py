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

Two columns of time: the Python engine with its CDR JSON (``cdr_form(price_session(...))``)
and the CDR path (``price_session_cdr``), which hands a session to the native core when the
tariff is in its scope (the time-of-day tariff; power restrictions are priced in Python).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.billing_bench import TARIFF
from billing.ocpi import tariff_from_ocpi
from billing.pricing import Reading, cdr_form, native_available, price_session, price_session_cdr

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


def _time(tariff, minutes: int) -> tuple[float, float, int, int]:
    """ms per session: the engine with its JSON, and the CDR path; periods; JSON bytes."""
    stop, readings = _session(minutes)
    args = {
        "tariff": tariff,
        "started_at": START,
        "stopped_at": stop,
        "meter_start_wh": 0,
        "readings": readings,
        "time_zone": "Europe/Berlin",
    }
    repeats = max(20, 4000 // max(minutes, 1))
    started = time.perf_counter()
    for _ in range(repeats):
        priced = price_session(**args)
        engine = cdr_form(priced)
    engine_ms = (time.perf_counter() - started) / repeats * 1000
    started = time.perf_counter()
    for _ in range(repeats):
        cdr = price_session_cdr(**args)
    cdr_ms = (time.perf_counter() - started) / repeats * 1000
    assert cdr == engine, "the CDR path must price as the engine"
    return engine_ms, cdr_ms, len(priced.periods), len(cdr.pricing)


def run() -> None:
    print(f"native pricing core: {'built' if native_available() else 'not built (Python engine only)'}")
    header = f"{'engine ms':>10} {'x start/stop':>13} {'CDR path ms':>12} {'engine/CDR':>11}"
    header += f" {'periods':>8} {'JSON B':>7}"
    print(f"{'tariff':22} {'meter values':>12} {header}")
    for name, data in (
        ("time of day (bench)", TARIFF),
        ("power, crossed often", POWER_TARIFF),
        ("power, never crossed", STEADY_POWER_TARIFF),
    ):
        tariff = tariff_from_ocpi(data)
        baseline = None
        for minutes in READINGS:
            engine_ms, cdr_ms, periods, size = _time(tariff, minutes)
            baseline = baseline or engine_ms
            print(
                f"{name:22} {minutes:12,} {engine_ms:10.3f} {engine_ms / baseline:13.1f} {cdr_ms:12.3f}"
                f" {engine_ms / cdr_ms:11.1f} {periods:8} {size:7,}"
            )
