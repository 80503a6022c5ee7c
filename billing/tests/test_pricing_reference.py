"""The engine against its slower reference implementation, on random tariffs and sessions.

``reference_pricing`` is the engine before the performance work, verbatim. Every restriction
kind, several time zones (with DST changes inside the sessions), decimal meter readings and
all four currencies: the CDR JSON (periods, volumes, costs, VAT, totals) must be identical.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing import pricing
from billing.ocpi import tariff_from_ocpi
from billing.tests import reference_pricing

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
# Around the 2026 DST changes of Berlin and New York, and an ordinary week.
STARTS = [
    datetime(2026, 3, 28, 20, tzinfo=UTC),
    datetime(2026, 10, 24, 20, tzinfo=UTC),
    datetime(2026, 3, 7, 22, tzinfo=UTC),
    datetime(2026, 11, 1, 3, tzinfo=UTC),
    datetime(2026, 6, 15, 9, 17, 3, 250_000, tzinfo=UTC),
]

hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59]))
money = st.decimals(min_value=0, max_value=3, places=4).map(str)
vat = st.sampled_from([None, "0", "7", "19", "21.5"])


@st.composite
def restrictions(draw):
    r = {}
    if draw(st.booleans()):
        r["start_time"], r["end_time"] = draw(hhmm), draw(hhmm)
    if draw(st.integers(0, 4)) == 0:
        r["day_of_week"] = draw(
            st.lists(st.sampled_from(["MONDAY", "SATURDAY", "SUNDAY", "WEDNESDAY"]), min_size=1, unique=True)
        )
    if draw(st.integers(0, 4)) == 0:
        r["start_date"] = "2026-03-29"
    for low, high, top in (
        ("min_kwh", "max_kwh", 60),
        ("min_duration", "max_duration", 20000),
        ("min_power", "max_power", 100),
    ):
        bound = draw(st.integers(0, top))
        if draw(st.integers(0, 3)) == 0:
            r[low] = bound
        if draw(st.integers(0, 3)) == 0:
            r[high] = bound + draw(st.integers(1, top))
        if low != "min_duration":
            r.update({k: str(v) for k, v in r.items() if k in (low, high)})
    return r


@st.composite
def elements(draw):
    kinds = draw(
        st.lists(st.sampled_from(["ENERGY", "TIME", "PARKING_TIME", "FLAT"]), min_size=1, unique=True)
    )
    components = [
        {
            "type": k,
            "price": draw(money),
            "step_size": draw(st.sampled_from([1, 1, 60, 300, 500])),
            "vat": draw(vat),
        }
        for k in kinds
    ]
    components = [{k: v for k, v in c.items() if v is not None} for c in components]
    element = {"price_components": components}
    r = draw(restrictions())
    if r:
        element["restrictions"] = r
    return element


@st.composite
def tariffs(draw):
    data = {
        "currency": draw(st.sampled_from(["EUR", "JPY", "KWD", "CHF"])),
        "elements": draw(st.lists(elements(), min_size=1, max_size=4)),
    }
    if draw(st.integers(0, 4)) == 0:
        low = draw(st.integers(0, 5))
        data["min_price"] = {"excl_vat": str(low), "incl_vat": str(low)}
    if draw(st.integers(0, 4)) == 0:
        high = draw(st.integers(5, 40))
        data["max_price"] = {"excl_vat": str(high), "incl_vat": str(high)}
    return data


@st.composite
def sessions(draw):
    start = draw(st.sampled_from(STARTS)) + timedelta(microseconds=draw(st.integers(0, 10**6 - 1)))
    meter_start = draw(st.integers(0, 10**7))
    if draw(st.booleans()):
        # A meter value every interval at a power near the tariffs' thresholds (0-200 kW),
        # drifting: runs of intervals on one side of a threshold, and crossings.
        seconds = draw(st.sampled_from([30, 60, 300]))
        kw, steps = draw(st.integers(0, 150)), []
        for drift in draw(st.lists(st.integers(-8, 8), min_size=2, max_size=12)):
            kw = max(0, kw + drift)
            steps.append((seconds * 10**6, Decimal(kw * seconds * 1000 // 3600)))
    else:
        steps = draw(
            st.lists(
                st.tuples(
                    st.integers(0, 4 * 3600 * 10**6),
                    # Often nothing between two readings: parking between charging stretches.
                    st.one_of(
                        st.just(Decimal(0)),
                        st.decimals(
                            min_value=0, max_value=30_000, places=draw(st.sampled_from([0, 0, 1, 4]))
                        ),
                    ),
                ),
                min_size=0,
                max_size=6,
            )
        )
    t, wh, readings = start, Decimal(meter_start), []
    for dt, dwh in steps:
        t += timedelta(microseconds=dt)
        wh += dwh
        readings.append((t, wh))
    stop = t + timedelta(microseconds=draw(st.integers(0, 3600 * 10**6)))
    if draw(st.booleans()):  # a stop reading, as the CDR path adds one
        readings.append((stop, wh + draw(st.integers(0, 5000))))
    if draw(st.integers(0, 5)) == 0 and readings:  # an out-of-order duplicate (offline replay)
        readings.insert(0, readings[-1])
    return start, stop, meter_start, readings


@settings(max_examples=400, deadline=None)
@given(tariffs(), sessions(), st.sampled_from(ZONES))
def test_engine_matches_reference(tariff, session, zone):
    start, stop, meter_start, readings = session
    results = []
    for module in (pricing, reference_pricing):
        priced = module.price_session(
            tariff=_engine_tariff(module, tariff),
            started_at=start,
            stopped_at=stop,
            meter_start_wh=meter_start,
            readings=[module.Reading(t, wh) for t, wh in readings],
            time_zone=zone,
        )
        results.append(priced.as_json())
    assert results[0] == results[1]


def _engine_tariff(module, data):
    parsed = tariff_from_ocpi(data)
    if module is pricing:
        return parsed
    # The same tariff in the reference module's own (identical) dataclasses.
    return reference_pricing.Tariff(
        currency=parsed.currency,
        min_price=parsed.min_price,
        max_price=parsed.max_price,
        elements=tuple(
            reference_pricing.TariffElement(
                price_components=tuple(
                    reference_pricing.PriceComponent(c.type, c.price, c.vat, c.step_size)
                    for c in e.price_components
                ),
                restrictions=reference_pricing.Restrictions(
                    **{name: getattr(e.restrictions, name) for name in pricing.Restrictions.__slots__}
                ),
            )
            for e in parsed.elements
        ),
    )
