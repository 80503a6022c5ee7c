"""The native pricing core against the Python engine: the same CDR, byte for byte.

``price_session_cdr`` hands a session to the C core (billing/native/pricing_core.c) when the
tariff and readings are in its scope. These properties hold the core to ``cdr_form(price_session
(...))`` on random tariffs and sessions (the reference test's strategies: every restriction kind,
DST changes inside sessions, four currencies, min/max, several VAT rates, step sizes): inside
its scope the core must answer, and answer the same; outside, the engine answers.

Without the core (no compiler) these are skipped, unless ``EVCHARGE_REQUIRE_NATIVE`` is set, as
CI sets it: there a missing core is a failure.
"""

import os
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import pricing
from billing.ocpi import tariff_from_ocpi
from billing.tests.test_pricing_reference import ZONES, elements, sessions, tariffs

if not pricing.native_available():
    if os.environ.get("EVCHARGE_REQUIRE_NATIVE"):
        pytest.fail("the native pricing core is not built (python -m billing.native.build --require)")
    pytest.skip("the native pricing core is not built", allow_module_level=True)

_NOT_NATIVE = ("min_kwh", "max_kwh", "min_duration", "max_duration", "min_power", "max_power")


def _in_scope(element: dict) -> dict:
    """``element`` without the restrictions the core does not evaluate."""
    restrictions = {k: v for k, v in element.get("restrictions", {}).items() if k not in _NOT_NATIVE}
    kept = {"price_components": element["price_components"]}
    if restrictions:
        kept["restrictions"] = restrictions
    return kept


DATES = ["2026-03-08", "2026-03-29", "2026-06-15", "2026-10-25", "2026-11-01"]  # around STARTS


@st.composite
def native_tariffs(draw):
    data = draw(tariffs())
    data["elements"] = [_in_scope(e) for e in data["elements"]]
    for element in data["elements"]:  # date ranges that start or end inside the sessions
        if draw(st.integers(0, 3)) == 0:
            restrictions = element.setdefault("restrictions", {})
            restrictions.pop("start_date", None)
            start, end = sorted(draw(st.lists(st.sampled_from(DATES), min_size=2, max_size=2, unique=True)))
            restrictions.update(
                draw(
                    st.sampled_from(
                        [{"start_date": start}, {"end_date": end}, {"start_date": start, "end_date": end}]
                    )
                )
            )
    if draw(st.integers(0, 5)) == 0:  # an element for reservations only: never applies to a session
        data["elements"].insert(0, {**draw(elements()), "restrictions": {"reservation": "RESERVATION"}})
    return data


OFFSETS = [timedelta(0), timedelta(hours=2), timedelta(hours=-5), timedelta(hours=5, minutes=30)]


@st.composite
def whole_wh_sessions(draw):
    """Whole-Wh sessions as the core reads them from Python: readings as ``int`` (the stop
    reading) or ``Decimal`` (meter values), times in UTC or another fixed offset (the core
    converts each to epoch µs itself)."""
    start, stop, meter_start, readings = draw(sessions())
    offset = timezone(draw(st.sampled_from(OFFSETS)))

    def moment(t):
        return t.astimezone(offset) if draw(st.booleans()) else t

    def wh(value):
        return int(value) if draw(st.booleans()) else Decimal(int(value))

    return moment(start), moment(stop), wh(meter_start), [(moment(t), wh(v)) for t, v in readings]


def _both(tariff, session, zone):
    start, stop, meter_start, readings = session
    args = {
        "tariff": tariff,
        "started_at": start,
        "stopped_at": stop,
        "meter_start_wh": meter_start,
        "readings": [pricing.Reading(t, wh) for t, wh in readings],
        "time_zone": zone,
    }
    return pricing.price_session_cdr(**args), pricing.cdr_form(pricing.price_session(**args)), args


@settings(max_examples=1500, deadline=None)
@given(native_tariffs(), whole_wh_sessions(), st.sampled_from(ZONES))
def test_native_core_prices_in_scope_sessions_as_the_engine(data, session, zone):
    tariff = tariff_from_ocpi(data)
    assert tariff.native is not None, "every tariff drawn here is in the core's scope"
    start, stop, meter_start, readings = session
    native = pricing._price_native(
        tariff, start, stop, meter_start, [pricing.Reading(t, wh) for t, wh in readings], zone
    )
    assert native is not None, "in scope and small: the core must answer"
    _, engine, _ = _both(tariff, session, zone)
    assert native == engine
    assert native.pricing == engine.pricing  # the JSON text, byte for byte


@settings(max_examples=400, deadline=None)
@given(tariffs(), sessions(), st.sampled_from(ZONES))
def test_cdr_form_is_the_engines_for_any_tariff(data, session, zone):
    cdr, engine, _ = _both(tariff_from_ocpi(data), session, zone)
    assert cdr == engine


BENCH_LIKE = {
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": "0.40", "vat": "19"}],
            "restrictions": {"start_time": "17:00", "end_time": "20:00"},
        },
        {
            "price_components": [
                {"type": "ENERGY", "price": "0.30", "vat": "19"},
                {"type": "FLAT", "price": "0.50"},
            ]
        },
    ],
}


def _session(
    tariff, readings, *, start=datetime(2026, 10, 3, 16, 30, tzinfo=UTC), minutes=97, meter_start=1000
):
    return {
        "tariff": tariff,
        "started_at": start,
        "stopped_at": start + timedelta(minutes=minutes),
        "meter_start_wh": meter_start,
        "readings": readings,
        "time_zone": "Europe/Berlin",
    }


def test_the_core_prices_a_session_across_a_time_of_day_boundary():
    """16:30-18:07 UTC in Berlin (CEST, +2) is 18:30-20:07 local, so 20:00 local splits it.
    22,456 Wh spread over 97 min: 90/97 (20,835.46… Wh) before 20:00 at 0.40/kWh = 8.334186…,
    7/97 (1,620.54… Wh) after at 0.30 = 0.486161…; + 0.50 flat (no VAT) = 9.320346… → 9.32.
    VAT by share of the total: 19 % on 9.32 * 8.820346…/9.320346… = 8.820019… (base "8.8200"),
    1.675803… → 1.68; 0 % on 0.499981… ("0.5000"), 0.00. Incl. VAT 9.32 + 1.68 = 11.00."""
    tariff = tariff_from_ocpi(BENCH_LIKE)
    start = datetime(2026, 10, 3, 16, 30, tzinfo=UTC)
    args = _session(tariff, [pricing.Reading(start + timedelta(minutes=97), Decimal(23456))])
    cdr = pricing._price_native(**args)
    assert cdr is not None
    assert cdr.total_excl == "9.32"
    assert cdr.vat == (
        '[{"rate":"0","base":"0.5000","amount":"0.00"},{"rate":"19","base":"8.8200","amount":"1.68"}]'
    )
    assert cdr.vat_rate is None  # two lines
    assert cdr.total_vat == "1.68"
    assert cdr.total_incl == "11.00"
    assert cdr.energy_wh == 22456
    assert cdr.energy_kwh == "22.456"
    assert '"end_date_time":"2026-10-03T18:00:00Z"' in cdr.pricing  # 20:00 in Berlin
    assert cdr == pricing.cdr_form(pricing.price_session(**args))


def test_out_of_scope_and_out_of_range_fall_back_to_the_engine():
    tariff = tariff_from_ocpi(BENCH_LIKE)
    start = datetime(2026, 10, 3, 16, 30, tzinfo=UTC)
    stop = start + timedelta(minutes=97)
    # A fractional reading: out of the core's scope; a reading beyond 64 bits; a meter so large
    # that the interpolated energy overflows 128 bits in the core's arithmetic.
    for readings in (
        [pricing.Reading(stop, Decimal("23456.5"))],
        [pricing.Reading(stop, Decimal(10**30))],
        [
            pricing.Reading(start + timedelta(microseconds=7), Decimal(2**62)),
            pricing.Reading(stop, Decimal(2**62)),
        ],
    ):
        args = _session(tariff, readings)
        assert pricing._price_native(**args) is None
        assert pricing.price_session_cdr(**args) == pricing.cdr_form(pricing.price_session(**args))
    # A kWh restriction: the tariff is not compiled for the core at all.
    data = {**BENCH_LIKE, "elements": [{**BENCH_LIKE["elements"][0], "restrictions": {"min_kwh": "5"}}]}
    assert tariff_from_ocpi(data).native is None
    # Inputs the engine refuses are refused the same way.
    with pytest.raises(pricing.PricingError, match="time zone"):
        pricing.price_session_cdr(**{**_session(tariff, []), "time_zone": "Mars/Base"})
    with pytest.raises(pricing.PricingError, match="before"):
        pricing.price_session_cdr(**_session(tariff, [], minutes=-1))


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29, 1, tzinfo=UTC)),  # 02:00 CET → 03:00 CEST
        ("Europe/Berlin", datetime(2026, 10, 25, 1, tzinfo=UTC)),  # 03:00 CEST → 02:00 CET
        ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),
        ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),
        ("Australia/Lord_Howe", datetime(2026, 4, 4, 15, tzinfo=UTC)),  # half an hour back
    ],
)
def test_the_core_follows_clock_changes_as_the_engine(zone, change):
    """Sessions around a clock change, priced by tariffs whose time-of-day windows open and close
    every quarter of an hour near it, with a flat fee only inside the window: the core takes
    each stretch's offset from the change, as the engine does (a stretch just after the change
    priced with the offset before it would move into or out of the window)."""
    compared = 0
    for opens in range(0, 5 * 60, 15):  # local 00:00 .. 04:45
        window = {
            "start_time": f"{opens // 60:02d}:{opens % 60:02d}",
            "end_time": f"{(opens + 30) // 60:02d}:{(opens + 30) % 60:02d}",
        }
        tariff = tariff_from_ocpi(
            {
                "currency": "EUR",
                "elements": [
                    {
                        "price_components": [
                            {"type": "ENERGY", "price": "0.70", "vat": "19"},
                            {"type": "FLAT", "price": "1.00", "vat": "19"},
                        ],
                        "restrictions": window,
                    },
                    {"price_components": [{"type": "ENERGY", "price": "0.30", "vat": "19"}]},
                ],
            }
        )
        for offset_minutes in range(-120, 61, 30):
            start = change + timedelta(minutes=offset_minutes)
            args = _session(
                tariff,
                [pricing.Reading(start + timedelta(minutes=150), Decimal(40000))],
                start=start,
                minutes=150,
            )
            args["time_zone"] = zone
            native = pricing._price_native(**args)
            assert native == pricing.cdr_form(pricing.price_session(**args)), (window, start)
            compared += 1
    assert compared == 20 * 7


def test_the_core_prices_a_flat_fee_at_the_session_start_and_windows_end_exclusive():
    """A flat fee for sessions started 17:00-20:00 (UTC site): a session started at 20:00:00
    exactly is outside (end exclusive), one started a microsecond before is inside."""
    tariff = tariff_from_ocpi(
        {
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [{"type": "FLAT", "price": "2.00"}],
                    "restrictions": {"start_time": "17:00", "end_time": "20:00"},
                },
                {"price_components": [{"type": "ENERGY", "price": "0.30"}]},
            ],
        }
    )
    for start, flat in (
        (datetime(2026, 10, 3, 20, tzinfo=UTC), None),
        (datetime(2026, 10, 3, 19, 59, 59, 999_999, tzinfo=UTC), "2"),
    ):
        args = {
            **_session(
                tariff,
                [pricing.Reading(start + timedelta(minutes=60), Decimal(11000))],
                start=start,
                minutes=60,
            ),
            "time_zone": "UTC",
        }
        cdr = pricing._price_native(**args)
        assert cdr == pricing.cdr_form(pricing.price_session(**args))
        # 10,000 Wh at 0.30 = 3.00, plus the flat fee when it applies
        assert Decimal(cdr.total_excl) == Decimal("3.00") + (Decimal(flat) if flat else 0)


def test_sessions_in_a_named_zone_and_readings_from_an_iterator_are_the_engines():
    """Times carrying a ZoneInfo (not what the database gives, but callable so) go to the engine:
    it subtracts two times of one ZoneInfo as wall clocks, which epoch arithmetic would not
    follow across a clock change. 01:30 CEST on 2026-10-25 (23:30 UTC the day before) to a
    wall-clock 150 minutes later, 04:00 CET (03:00 UTC): 210 minutes of real time, 150 of wall
    clock, which is what the engine counts."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    tariff = tariff_from_ocpi(BENCH_LIKE)
    start = datetime(2026, 10, 25, 1, 30, tzinfo=berlin)
    stop = start + timedelta(minutes=150)
    assert (stop - start, stop.astimezone(UTC) - start.astimezone(UTC)) == (
        timedelta(minutes=150),
        timedelta(minutes=210),
    )
    args = _session(tariff, [pricing.Reading(stop, Decimal(40000))], start=start)
    args["stopped_at"] = stop
    assert pricing._price_native(**args) is None
    assert pricing.price_session_cdr(**args) == pricing.cdr_form(pricing.price_session(**args))
    # A generator of readings: read once, priced the same as the list.
    utc = _session(tariff, [pricing.Reading(datetime(2026, 10, 3, 18, 7, tzinfo=UTC), Decimal(23456))])
    listed = pricing.price_session_cdr(**utc)
    assert listed.total_excl == "9.32"
    assert pricing.price_session_cdr(**{**utc, "readings": (r for r in utc["readings"])}) == listed


def test_a_tariff_beyond_the_core_is_built_and_priced_by_the_engine():
    """Numbers the core cannot hold (a max price of 10^26, whose rounding exceeds the decimal
    context) never stop a tariff from being built: the engine prices it."""
    tariff = pricing.Tariff(
        currency="EUR", elements=tariff_from_ocpi(BENCH_LIKE).elements, max_price=Decimal("1E+26")
    )
    assert tariff.native is None
    args = _session(tariff, [pricing.Reading(datetime(2026, 10, 3, 18, 7, tzinfo=UTC), Decimal(23456))])
    assert pricing.price_session_cdr(**args).total_excl == "9.32"


def test_the_core_refuses_a_malformed_tariff_form_with_an_error():
    """compile_tariff is private to pricing.py, but a wrong index or type is an exception, not a
    crash: the core keeps pointers into the form, so it takes tuples only."""
    core = pricing._pricing_core
    restriction = (0, 0, 0, 0, 0, 0, 0, 0, 0)
    rate = (19, 1, b"19")

    def form(candidate=(0, -1, 1, 2, 0, 1, b"{"), places=2, first_rate=0, rates=(rate,)):
        return (places, 0, b"{", (restriction,), ((candidate,), (), (), ()), rates, first_rate, None, None)

    assert core.compile_tariff(*form()) is not None  # the well-formed one compiles
    for bad in (
        form(candidate=(0, -1, 1, 2, -1, 1, b"{")),  # a negative rate index
        form(candidate=(0, -2, 1, 2, 0, 1, b"{")),  # a restriction index below -1
        form(candidate=(0, 1, 1, 2, 0, 1, b"{")),  # a restriction that is not there
        form(candidate=(0, -1, 1, 2, 0, 0, b"{")),  # a step of 0
        form(places=18),  # VAT bases have places + 2 decimals: beyond 64 bits
        form(candidate=[0, -1, 1, 2, 0, 1, b"{"]),  # a list where a tuple belongs
        form(first_rate=1),
        form(rates=[rate]),  # a list: mutable under the core's pointers
    ):
        with pytest.raises((ValueError, TypeError)):
            core.compile_tariff(*bad)


def test_readings_outside_the_session_count_at_its_ends_as_in_the_engine():
    """A reading stamped before the start or after the stop (a charger's clock, a late meter
    value) counts at the start or the stop, in the core as in the engine."""
    tariff = tariff_from_ocpi(BENCH_LIKE)
    start = datetime(2026, 10, 3, 16, 30, tzinfo=UTC)
    readings = [
        pricing.Reading(start - timedelta(minutes=5), 1200),
        pricing.Reading(start + timedelta(minutes=30), Decimal(9000)),
        pricing.Reading(start + timedelta(minutes=97 + 10), 23456),
    ]
    args = _session(tariff, readings)
    native = pricing._price_native(**args)
    assert native is not None
    assert native == pricing.cdr_form(pricing.price_session(**args))
    # The early reading stands at the start (200 Wh past the meter start, the curve's origin):
    # 23,456 - 1,000 - 200 = 22,256 Wh priced, the last of it at the stop, not ten minutes on.
    assert native.energy_wh == 22256
    assert '"end_date_time":"2026-10-03T18:07:00Z"' in native.pricing
