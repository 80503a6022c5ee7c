"""The pricing engine against cases worked out by hand, and its properties (hypothesis).

Each case is an OCPI tariff, a session (UTC times on Monday 2026-03-02 unless said otherwise)
with its energy register readings, and the expected totals; the arithmetic is in the comment.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.ocpi import OcpiError, tariff_from_ocpi
from billing.pricing import PricingError, Reading, price_session
from evcharge.core.money import MINOR_UNITS, round_half_up


def at(hhmm: str, day: int = 2) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime(2026, 3, day, hours, minutes, tzinfo=UTC)


def ocpi(currency="EUR", *elements, min_price=None, max_price=None) -> dict:
    data = {"currency": currency, "elements": list(elements)}
    if min_price is not None:
        data["min_price"] = {"excl_vat": min_price, "incl_vat": min_price}
    if max_price is not None:
        data["max_price"] = {"excl_vat": max_price, "incl_vat": max_price}
    return data


def el(*components, **restrictions) -> dict:
    element = {"price_components": list(components)}
    if restrictions:
        element["restrictions"] = restrictions
    return element


def c(kind: str, price: str, vat: str | None = None, step: int = 1) -> dict:
    component = {"type": kind, "price": price, "step_size": step}
    if vat is not None:
        component["vat"] = vat
    return component


def price(tariff: dict, start: str, readings: list[tuple[str, int]], *, tz="UTC", day=2, meter_start=0):
    stop = readings[-1][0]
    return price_session(
        tariff=tariff_from_ocpi(tariff),
        started_at=at(start, day),
        stopped_at=at(stop, day),
        meter_start_wh=meter_start,
        readings=[Reading(at(t, day), wh) for t, wh in readings],
        time_zone=tz,
    )


# (id, tariff, start, readings [(time, Wh register)], tz, expected excl, VAT, incl)
CASES = [
    # 22 300 Wh = 22.3 kWh x 0.30 = 6.69; VAT 19 % = 1.2711 → 1.27; incl 7.96
    (
        "energy_only",
        ocpi("EUR", el(c("ENERGY", "0.30", "19"))),
        "10:00",
        [("11:00", 22_300)],
        "UTC",
        "6.69",
        "1.27",
        "7.96",
    ),
    # charging 10:00-11:30 the whole time: 1.5 h x 2.00 = 3.00; VAT 20 % = 0.60; energy not priced
    (
        "time",
        ocpi("EUR", el(c("TIME", "2.00", "20"))),
        "10:00",
        [("11:30", 15_000)],
        "UTC",
        "3.00",
        "0.60",
        "3.60",
    ),
    # 20 kWh x 0.25 = 5.00 until 11:00; meter flat 11:00-11:45 = 0.75 h parking x 6.00 = 4.50;
    # total 9.50; VAT 19 % = 1.805 → 1.81 (half-up); incl 11.31
    (
        "parking_after_charging",
        ocpi("EUR", el(c("ENERGY", "0.25", "19"), c("PARKING_TIME", "6.00", "19"))),
        "10:00",
        [("11:00", 20_000), ("11:45", 20_000)],
        "UTC",
        "9.50",
        "1.81",
        "11.31",
    ),
    # flat 1.50 + 10 kWh x 0.30 = 3.00 → 4.50; no VAT given → 0
    (
        "flat",
        ocpi("EUR", el(c("FLAT", "1.50"), c("ENERGY", "0.30"))),
        "10:00",
        [("10:30", 10_000)],
        "UTC",
        "4.50",
        "0.00",
        "4.50",
    ),
    # energy 12 345 Wh, step 1000 Wh → 13 000 Wh x 0.30 = 3.90;
    # charging 3000 s, step 900 s → 3600 s = 1 h x 1.20 = 1.20; total 5.10
    (
        "step_sizes",
        ocpi("EUR", el(c("ENERGY", "0.30", step=1000), c("TIME", "1.20", step=900))),
        "10:00",
        [("10:50", 12_345)],
        "UTC",
        "5.10",
        "0.00",
        "5.10",
    ),
    # Berlin is UTC+1 in March: 15:00-17:00 UTC = 16:00-18:00 local; 20 kWh spread linearly,
    # 17:00 local (16:00 UTC) splits it in halves: 10 x 0.30 + 10 x 0.40 = 3.00 + 4.00 = 7.00
    (
        "time_of_day_boundary",
        ocpi("EUR", el(c("ENERGY", "0.40"), start_time="17:00", end_time="20:00"), el(c("ENERGY", "0.30"))),
        "15:00",
        [("17:00", 20_000)],
        "Europe/Berlin",
        "7.00",
        "0.00",
        "7.00",
    ),
    # readings 15:00 0, 15:40 8000, 16:20 20 000; the 16:00 UTC boundary cuts 15:40-16:20
    # (12 000 Wh in 40 min) after 20 min → 6000 Wh before: (8000 + 6000) Wh x 0.30 = 4.20,
    # 6000 Wh x 0.40 = 2.40; total 6.60
    (
        "boundary_between_readings",
        ocpi("EUR", el(c("ENERGY", "0.40"), start_time="17:00", end_time="20:00"), el(c("ENERGY", "0.30"))),
        "15:00",
        [("15:40", 8_000), ("16:20", 20_000)],
        "Europe/Berlin",
        "6.60",
        "0.00",
        "6.60",
    ),
    # 1 kWh x 0.30 = 0.30 < min 2.00 → 2.00; VAT 19 % = 0.38; incl 2.38
    (
        "min_price",
        ocpi("EUR", el(c("ENERGY", "0.30", "19")), min_price="2.00"),
        "10:00",
        [("10:10", 1_000)],
        "UTC",
        "2.00",
        "0.38",
        "2.38",
    ),
    # 50 kWh x 0.50 = 25.00 > max 20.00 → 20.00; VAT 20 % = 4.00; incl 24.00
    (
        "max_price",
        ocpi("EUR", el(c("ENERGY", "0.50", "20")), max_price="20.00"),
        "10:00",
        [("11:00", 50_000)],
        "UTC",
        "20.00",
        "4.00",
        "24.00",
    ),
    # 10.5 kWh x 0.30 = 3.15 at 19 % → 0.5985 → 0.60; parking 10:30-10:45 = 0.25 h x 6.00 = 1.50 at 7 %
    # → 0.105 → 0.11 (half-up); flat 1.00 at 0 % → 0; total 5.65, VAT 0.71, incl 6.36
    (
        "several_vat_rates",
        ocpi("EUR", el(c("ENERGY", "0.30", "19"), c("PARKING_TIME", "6.00", "7"), c("FLAT", "1.00", "0"))),
        "10:00",
        [("10:30", 10_500), ("10:45", 10_500)],
        "UTC",
        "5.65",
        "0.71",
        "6.36",
    ),
    # min price with two rates: energy 1 kWh x 0.30 = 0.30 at 20 %, flat 0.10 at 10 %: sum 0.40 → min 1.00;
    # bases scaled by 1.00 / 0.40: 0.75 at 20 % → 0.15, 0.25 at 10 % → 0.025 → 0.03; VAT 0.18; incl 1.18
    (
        "min_price_split_by_rate",
        ocpi("EUR", el(c("ENERGY", "0.30", "20"), c("FLAT", "0.10", "10")), min_price="1.00"),
        "10:00",
        [("10:10", 1_000)],
        "UTC",
        "1.00",
        "0.18",
        "1.18",
    ),
    # 12.345 kWh x 45 = 555.525 → 556 (JPY has no minor unit); VAT 10 % = 55.6 → 56; incl 612
    (
        "jpy",
        ocpi("JPY", el(c("ENERGY", "45", "10"))),
        "10:00",
        [("11:00", 12_345)],
        "UTC",
        "556",
        "56",
        "612",
    ),
    # 22.222 kWh x 0.0125 = 0.2777750 → 0.278 (3 decimals); VAT 5 % = 0.0139 → 0.014; incl 0.292
    (
        "kwd",
        ocpi("KWD", el(c("ENERGY", "0.0125", "5"))),
        "10:00",
        [("11:00", 22_222)],
        "UTC",
        "0.278",
        "0.014",
        "0.292",
    ),
    # 10.02 kWh x 0.25 = 2.505 → 2.51: half-up, not banker's rounding (which gives 2.50)
    (
        "half_up_tie",
        ocpi("EUR", el(c("ENERGY", "0.25"))),
        "10:00",
        [("11:00", 10_020)],
        "UTC",
        "2.51",
        "0.00",
        "2.51",
    ),
    # first 10 kWh at 0.20 (max_kwh 10, exclusive), the rest at 0.40: 10 x 0.20 + 5 x 0.40 = 4.00
    (
        "kwh_tiers",
        ocpi("EUR", el(c("ENERGY", "0.20"), max_kwh=10), el(c("ENERGY", "0.40"))),
        "10:00",
        [("11:00", 15_000)],
        "UTC",
        "4.00",
        "0.00",
        "4.00",
    ),
    # first 30 min of charging at 1.00/h, then 3.00/h: 0.5 x 1 + 0.5 x 3 = 2.00
    (
        "duration_tiers",
        ocpi("EUR", el(c("TIME", "1.00"), max_duration=1800), el(c("TIME", "3.00"))),
        "10:00",
        [("11:00", 30_000)],
        "UTC",
        "2.00",
        "0.00",
        "2.00",
    ),
    # weekend element skipped on a Monday: 10 kWh x 0.30 = 3.00
    (
        "day_of_week",
        ocpi("EUR", el(c("ENERGY", "0.50"), day_of_week=["SATURDAY", "SUNDAY"]), el(c("ENERGY", "0.30"))),
        "10:00",
        [("11:00", 10_000)],
        "UTC",
        "3.00",
        "0.00",
        "3.00",
    ),
    # 10:00-10:30 50 kWh = 100 kW ≥ 50 → 0.60: 30.00; 10:30-11:00 10 kWh = 20 kW → 0.35: 3.50; total 33.50
    (
        "power_tiers",
        ocpi("EUR", el(c("ENERGY", "0.60"), min_power=50), el(c("ENERGY", "0.35"))),
        "10:00",
        [("10:30", 50_000), ("11:00", 60_000)],
        "UTC",
        "33.50",
        "0.00",
        "33.50",
    ),
    # night rate 22:00-06:00 wraps midnight: 21:00-23:00 UTC, 20 kWh linear: 21-22 10 kWh x 0.30 = 3.00,
    # 22-23 10 kWh x 0.20 = 2.00; total 5.00
    (
        "night_wraps_midnight",
        ocpi("EUR", el(c("ENERGY", "0.20"), start_time="22:00", end_time="06:00"), el(c("ENERGY", "0.30"))),
        "21:00",
        [("23:00", 20_000)],
        "UTC",
        "5.00",
        "0.00",
        "5.00",
    ),
]


@pytest.mark.parametrize(
    ("tariff", "start", "readings", "tz", "excl", "vat", "incl"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_hand_worked_cases(tariff, start, readings, tz, excl, vat, incl):
    priced = price(tariff, start, readings, tz=tz)
    assert str(priced.total_excl.amount) == excl
    assert str(priced.total_vat.amount) == vat
    assert str(priced.total_incl.amount) == incl
    assert priced.total_incl.currency == tariff["currency"]


def test_spring_forward_gap():
    # Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never exists locally,
    # so the 02:30-04:00 window opens at the jump. 00:00-02:00 UTC, 20 kWh linear:
    # 00:00-01:00 10 kWh x 0.30 = 3.00; 01:00-02:00 (03:00-04:00 CEST) 10 kWh x 0.40 = 4.00; 7.00
    tariff = ocpi(
        "EUR", el(c("ENERGY", "0.40"), start_time="02:30", end_time="04:00"), el(c("ENERGY", "0.30"))
    )
    priced = price(tariff, "00:00", [("02:00", 20_000)], tz="Europe/Berlin", day=29)
    assert priced.total_excl.amount == Decimal("7.00")


def test_fall_back_repeats_the_window():
    # Berlin 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00 UTC); 02:30-03:00 happens twice:
    # 00:30-01:00 UTC and 01:30-02:00 UTC. 00:00-03:00 UTC, 30 kWh linear = 10 kWh/h:
    # 1 h in the window 10 kWh x 0.40 = 4.00; 2 h outside 20 kWh x 0.30 = 6.00; 10.00
    tariff = ocpi(
        "EUR", el(c("ENERGY", "0.40"), start_time="02:30", end_time="03:00"), el(c("ENERGY", "0.30"))
    )
    start = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)
    priced = price_session(
        tariff=tariff_from_ocpi(tariff),
        started_at=start,
        stopped_at=start + timedelta(hours=3),
        meter_start_wh=0,
        readings=[Reading(start + timedelta(hours=3), 30_000)],
        time_zone="Europe/Berlin",
    )
    assert priced.total_excl.amount == Decimal("10.00")


def test_parking_and_charging_hours_are_told_apart():
    # 10:00-11:00 charging (20 kWh), 11:00-11:45 connected with a flat meter
    priced = price(
        ocpi("EUR", el(c("ENERGY", "0.25"), c("PARKING_TIME", "6.00"))),
        "10:00",
        [("11:00", 20_000), ("11:45", 20_000)],
    )
    assert priced.charging_seconds == 3600
    assert priced.parking_seconds == 45 * 60
    assert priced.energy_kwh == Decimal(20)
    kinds = [[comp.type for comp in p.components] for p in priced.periods]
    assert kinds == [["ENERGY"], ["PARKING_TIME"]]


def test_time_after_the_last_reading_is_parking():
    # A live session (or one without a stop value): started 10:00, one reading 10:05 at 1.5 kWh,
    # priced until 10:20. Charging 10:00-10:05: 1/12 h x 60.00 = 5.00; nothing known delivered
    # after 10:05, so 10:05-10:20 is parking: 1/4 h x 6.00 = 1.50; total 6.50 (not 20 min x 60).
    priced = price_session(
        tariff=tariff_from_ocpi(ocpi("EUR", el(c("TIME", "60.00"), c("PARKING_TIME", "6.00")))),
        started_at=at("10:00"),
        stopped_at=at("10:20"),
        meter_start_wh=0,
        readings=[Reading(at("10:05"), 1_500)],
        time_zone="UTC",
    )
    assert (priced.charging_seconds, priced.parking_seconds) == (300, 900)
    assert priced.total_excl.amount == Decimal("6.50")
    assert [[comp.type for comp in p.components] for p in priced.periods] == [["TIME"], ["PARKING_TIME"]]


def test_minute_readings_make_one_period_per_charging_or_parking_stretch():
    # A meter value every 10 minutes: 10:00-11:00 charging 10 kWh, 11:00-12:00 flat (parked),
    # 12:00-13:00 charging 4 kWh. The stretches are the periods, whatever the readings between:
    # energy 14 kWh x 0.30 = 4.20; TIME 2 h x 2.00 = 4.00; PARKING_TIME 1 h x 1.00 = 1.00;
    # total 9.20.
    def register(minute: int) -> int:
        if minute <= 660:
            return (minute - 600) * 10_000 // 60
        return 10_000 if minute <= 720 else 10_000 + (minute - 720) * 4_000 // 60

    readings = [(f"{m // 60:02d}:{m % 60:02d}", register(m)) for m in range(610, 781, 10)]
    priced = price(
        ocpi("EUR", el(c("ENERGY", "0.30"), c("TIME", "2.00"), c("PARKING_TIME", "1.00"))), "10:00", readings
    )
    periods = [p.as_json() for p in priced.periods]
    assert [(p["start_date_time"][11:16], p["end_date_time"][11:16]) for p in periods] == [
        ("10:00", "11:00"),
        ("11:00", "12:00"),
        ("12:00", "13:00"),
    ]
    assert [[d["volume"] for d in p["dimensions"]] for p in periods] == [["10", "1"], ["0", "1"], ["4", "1"]]
    assert [p["dimensions"][1]["type"] for p in periods] == ["TIME", "PARKING_TIME", "TIME"]
    assert priced.total_excl.amount == Decimal("9.20")


def test_power_thresholds_cut_only_where_the_power_crosses_one():
    # A meter value a minute, 10:00-10:40, at 30 kW, then 60 kW, then 30 kW, then 12 kW (10 min
    # each: 5, 10, 5 and 2 kWh). Prices: 0.60/kWh from 50 kW, 0.50 from 22 kW, else 0.40.
    # Every reading within a run is on the same side of both thresholds: four periods, not 40.
    # 5 x 0.50 + 10 x 0.60 + 5 x 0.50 + 2 x 0.40 = 2.50 + 6.00 + 2.50 + 0.80 = 11.80.
    kw = [30] * 10 + [60] * 10 + [30] * 10 + [12] * 10
    register = [sum(kw[:minute]) * 1000 // 60 for minute in range(41)]
    readings = [(f"10:{m:02d}", register[m]) for m in range(1, 41)]
    tariff = ocpi(
        "EUR",
        el(c("ENERGY", "0.60"), min_power="50"),
        el(c("ENERGY", "0.50"), min_power="22"),
        el(c("ENERGY", "0.40")),
    )
    priced = price(tariff, "10:00", readings)
    periods = [p.as_json() for p in priced.periods]
    assert [(p["start_date_time"][11:16], p["end_date_time"][11:16]) for p in periods] == [
        ("10:00", "10:10"),
        ("10:10", "10:20"),
        ("10:20", "10:30"),
        ("10:30", "10:40"),
    ]
    assert [(p["dimensions"][0]["volume"], p["components"][0]["price"]) for p in periods] == [
        ("5", "0.5"),
        ("10", "0.6"),
        ("5", "0.5"),
        ("2", "0.4"),
    ]
    assert priced.total_excl.amount == Decimal("11.80")


def test_boundary_splits_periods_in_the_cdr():
    priced = price(
        ocpi("EUR", el(c("ENERGY", "0.40"), start_time="17:00", end_time="20:00"), el(c("ENERGY", "0.30"))),
        "15:00",
        [("17:00", 20_000)],
        tz="Europe/Berlin",
    )
    periods = [p.as_json() for p in priced.periods]
    assert [p["start_date_time"] for p in periods] == ["2026-03-02T15:00:00Z", "2026-03-02T16:00:00Z"]
    assert [p["dimensions"][0]["volume"] for p in periods] == ["10", "10"]
    assert [p["components"][0]["tariff_element"] for p in periods] == [1, 0]


def test_meter_going_backwards_counts_as_flat():
    # a reading below an earlier one (a vendor register glitch) never gives energy back:
    # 0 → 10 000 → 8 000 (treated as 10 000) → 12 000: 12 kWh x 0.30 = 3.60
    priced = price(
        ocpi("EUR", el(c("ENERGY", "0.30"))),
        "10:00",
        [("10:20", 10_000), ("10:40", 8_000), ("11:00", 12_000)],
    )
    assert priced.total_excl.amount == Decimal("3.60")


def test_meter_start_is_subtracted():
    priced = price(
        ocpi("EUR", el(c("ENERGY", "0.30"))), "10:00", [("11:00", 1_010_000)], meter_start=1_000_000
    )
    assert priced.total_excl.amount == Decimal("3.00")


def test_flat_applies_from_the_element_valid_at_start():
    # weekday flat 2.00 from 08:00 to 20:00, otherwise 1.00; the session starts at 07:50 → 1.00
    tariff = ocpi(
        "EUR",
        el(c("FLAT", "2.00"), start_time="08:00", end_time="20:00"),
        el(c("FLAT", "1.00")),
    )
    assert price(tariff, "07:50", [("09:00", 1_000)]).total_excl.amount == Decimal("1.00")


def test_unpriced_stretch_is_free():
    # only 17:00-20:00 is priced; 15:00-17:00 UTC session (16-18 local): half the energy is free
    priced = price(
        ocpi("EUR", el(c("ENERGY", "0.40"), start_time="17:00", end_time="20:00")),
        "15:00",
        [("17:00", 20_000)],
        tz="Europe/Berlin",
    )
    assert priced.total_excl.amount == Decimal("4.00")


def test_zero_length_session():
    priced = price(ocpi("EUR", el(c("ENERGY", "0.30"), c("FLAT", "1.00"))), "10:00", [("10:00", 0)])
    assert priced.total_excl.amount == Decimal("1.00")


def test_as_json_is_plain_strings():
    priced = price(ocpi("EUR", el(c("ENERGY", "0.30", "19"))), "10:00", [("11:00", 22_300)])
    data = priced.as_json()
    assert data["total_excl_vat"] == "6.69"
    assert data["vat"] == [{"rate": "19", "base": "6.6900", "amount": "1.27"}]
    assert data["charging_periods"][0]["components"][0]["cost"] == "6.69"


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"currency": "XXX", "elements": [el(c("ENERGY", "1"))]}, "currency"),
        ({"currency": "EUR", "elements": []}, "elements"),
        ({"currency": "EUR", "elements": [el(c("POWER", "1"))]}, "elements[0].price_components[0].type"),
        ({"currency": "EUR", "elements": [el(c("ENERGY", "-1"))]}, "elements[0].price_components[0].price"),
        (
            {"currency": "EUR", "elements": [el(c("ENERGY", "1", step=0))]},
            "elements[0].price_components[0].step_size",
        ),
        (
            {"currency": "EUR", "elements": [el(c("ENERGY", "1"), c("ENERGY", "2"))]},
            "elements[0].price_components",
        ),
        (
            {"currency": "EUR", "elements": [el(c("ENERGY", "1"), start_time="25:00")]},
            "elements[0].restrictions.start_time",
        ),
        (
            {"currency": "EUR", "elements": [el(c("ENERGY", "1"), day_of_week=["FUNDAY"])]},
            "elements[0].restrictions.day_of_week",
        ),
        (
            {"currency": "EUR", "elements": [el(c("ENERGY", "1"), min_kwh=5, max_kwh=5)]},
            "elements[0].restrictions.max_kwh",
        ),
        (ocpi("EUR", el(c("ENERGY", "1")), min_price="5", max_price="4"), "max_price"),
    ],
)
def test_invalid_ocpi_is_refused_with_its_path(data, path):
    with pytest.raises(OcpiError) as excinfo:
        tariff_from_ocpi(data)
    assert path in excinfo.value.details


def test_naive_datetimes_are_refused():
    with pytest.raises(PricingError):
        price_session(
            tariff=tariff_from_ocpi(ocpi("EUR", el(c("ENERGY", "1")))),
            started_at=datetime(2026, 3, 2, 10),
            stopped_at=at("11:00"),
            meter_start_wh=0,
            readings=[],
            time_zone="UTC",
        )


# --- properties --------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=5, places=4)
vats = st.sampled_from(["0", "5", "7", "10", "19", "20", "21.5"])
currencies = st.sampled_from(["EUR", "JPY", "KWD", "CHF"])


@st.composite
def sessions(draw):
    """Random readings (seconds after 10:00 → cumulative Wh) for a session of up to 10 h."""
    steps = draw(st.lists(st.tuples(st.integers(1, 3600), st.integers(0, 40_000)), min_size=1, max_size=8))
    t, wh, readings = 0, 0, []
    for dt, dwh in steps:
        t += dt
        wh += dwh
        readings.append((t, wh))
    return readings


def run(tariff: dict, readings: list[tuple[int, int]], tz: str = "Europe/Berlin"):
    start = at("10:00")
    return price_session(
        tariff=tariff_from_ocpi(tariff),
        started_at=start,
        stopped_at=start + timedelta(seconds=readings[-1][0]),
        meter_start_wh=0,
        readings=[Reading(start + timedelta(seconds=t), wh) for t, wh in readings],
        time_zone=tz,
    )


@settings(max_examples=60, deadline=None)
@given(sessions(), prices, prices, prices, vats, vats, currencies)
def test_totals_are_consistent(readings, energy, time_price, parking, vat1, vat2, currency):
    tariff = ocpi(
        currency,
        el(c("ENERGY", str(energy), vat1), start_time="11:00", end_time="13:30"),
        el(
            c("ENERGY", str(energy * 2), vat2),
            c("TIME", str(time_price), vat1),
            c("PARKING_TIME", str(parking)),
        ),
    )
    priced = run(tariff, readings)
    exponent = -MINOR_UNITS[currency]
    for money in (priced.total_excl, priced.total_vat, priced.total_incl):
        assert money.amount.as_tuple().exponent == exponent
    assert priced.total_incl.amount == priced.total_excl.amount + priced.total_vat.amount
    assert priced.total_vat.amount == sum(v.amount for v in priced.vat_lines)
    # energy is conserved across all the cuts; time splits into charging + parking
    assert priced.energy_wh == readings[-1][1]
    assert sum(p.energy_wh for p in priced.periods) == readings[-1][1]
    assert priced.charging_seconds + priced.parking_seconds == readings[-1][0]


@settings(max_examples=60, deadline=None)
@given(sessions(), prices, st.data())
def test_a_reading_on_the_line_changes_nothing(readings, energy, data):
    """Linear interpolation: an extra reading exactly on the interpolated line is redundant."""
    tariff = ocpi(
        "EUR", el(c("ENERGY", str(energy)), start_time="10:30", end_time="12:00"), el(c("ENERGY", "0.3"))
    )
    readings = [(2 * t, 2 * wh) for t, wh in readings]  # even numbers: every midpoint is whole
    points = [(0, 0), *readings]
    i = data.draw(st.integers(0, len(points) - 2))
    (t0, e0), (t1, e1) = points[i], points[i + 1]
    extra = sorted([*readings, ((t0 + t1) // 2, (e0 + e1) // 2)])
    assert run(tariff, extra).total_excl == run(tariff, readings).total_excl


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 500_000), st.decimals(min_value=0, max_value=2, places=6), currencies)
def test_single_energy_price_is_kwh_times_price_rounded_once(wh, energy, currency):
    priced = run(ocpi(currency, el(c("ENERGY", str(energy)))), [(3600, wh)], tz="UTC")
    assert priced.total_excl.amount == round_half_up(Decimal(wh) / 1000 * energy, currency)


@settings(max_examples=40, deadline=None)
@given(sessions(), prices, st.decimals(min_value=0, max_value=30, places=2), st.decimals(0, 30, places=2))
def test_min_and_max_bound_the_total(readings, energy, low, high):
    low, high = min(low, high), max(low, high)
    priced = run(ocpi("EUR", el(c("ENERGY", str(energy))), min_price=str(low), max_price=str(high)), readings)
    assert low <= priced.total_excl.amount <= high
