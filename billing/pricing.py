"""The pricing engine: an OCPI 2.2.1 tariff applied to one session. Pure: no database, no clock.

The rules are written down in ``docs/billing.md``; this module is their only implementation.
The CDR task, the live-session estimate, the admin preview and the benchmark all call
:func:`price_session`.

Inputs and outputs are ``Decimal``; never float. Inside, volumes and costs are exact rational
numbers (``gmpy2.mpq``: GMP's rationals, :class:`fractions.Fraction` in C, a tenth of its
cost): energy interpolated between two readings and hours of
a segment are quotients (a third of an interval, seconds / 3600) that no finite Decimal holds,
and the spec allows one rounding only — the CDR total to the currency's minor unit, then VAT
per rate. Converting the exact total to Decimal is exact whenever it terminates, and a value
that does not terminate is never a rounding tie, so half-up rounding is decided correctly.

Speed (the CDR path prices a million sessions a run): instants are integer microseconds since
the session start, so volumes stay plain integers until a division needs an mpq; the
local-time boundaries of a zone and day are computed once and cached; rounding and display
are exact integer arithmetic. ``billing/tests/reference_pricing.py`` is the engine before
that work, and a property test holds the two to the same JSON on random tariffs and sessions.
"""

from __future__ import annotations

import functools
import math
import operator
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from itertools import pairwise
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson
from gmpy2 import mpq

from evcharge.core.money import Money, minor_unit, round_half_up

ENERGY = "ENERGY"
TIME = "TIME"
PARKING_TIME = "PARKING_TIME"
FLAT = "FLAT"
COMPONENT_TYPES = (ENERGY, FLAT, PARKING_TIME, TIME)
DIMENSIONS = (ENERGY, TIME, PARKING_TIME)  # priced per segment; FLAT once per session
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")

_US_PER_HOUR = 3_600_000_000
_STEP_UNIT = {ENERGY: mpq(1, 1000), TIME: mpq(1, 3600), PARKING_TIME: mpq(1, 3600)}  # kWh per Wh, h per s


class PricingError(ValueError):
    """The inputs cannot be priced (inconsistent tariff or session)."""


@dataclass(frozen=True, slots=True)
class PriceComponent:
    type: str
    price: Decimal  # excl. VAT per kWh, per hour or per session
    vat: Decimal | None = None  # percent; None = no VAT
    step_size: int = 1  # Wh for ENERGY, seconds for TIME/PARKING_TIME; ignored for FLAT

    def __post_init__(self) -> None:
        if self.type not in COMPONENT_TYPES:
            raise PricingError(f"unknown price component type {self.type!r}")
        if not isinstance(self.price, Decimal) or self.price < 0:
            raise PricingError("price must be a non-negative Decimal")
        if self.vat is not None and (not isinstance(self.vat, Decimal) or self.vat < 0):
            raise PricingError("vat must be a non-negative Decimal percentage")
        if self.step_size < 1:
            raise PricingError("step_size must be at least 1")


@dataclass(frozen=True, slots=True)
class Restrictions:
    """OCPI TariffRestrictions. ``None`` / empty means "no restriction"."""

    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None  # kW
    max_power: Decimal | None = None
    min_duration: int | None = None  # seconds
    max_duration: int | None = None
    day_of_week: frozenset[str] = frozenset()
    reservation: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.day_of_week) - set(DAYS)
        if unknown:
            raise PricingError(f"unknown day_of_week {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class TariffElement:
    price_components: tuple[PriceComponent, ...]
    restrictions: Restrictions = field(default_factory=Restrictions)

    def __post_init__(self) -> None:
        if not self.price_components:
            raise PricingError("a tariff element needs at least one price component")
        types = [c.type for c in self.price_components]
        if len(types) != len(set(types)):
            raise PricingError("a tariff element may hold one price component per type")

    def component(self, kind: str) -> PriceComponent | None:
        for component in self.price_components:
            if component.type == kind:
                return component
        return None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a tariff asks of every session, worked out once per tariff."""

    # per type, in element order: (element index, component, its restrictions or None for none)
    candidates: dict[str, tuple[tuple[int, PriceComponent, Restrictions | None], ...]]
    times_of_day: tuple[time, ...]  # local times where prices may change (sorted)
    duration_cuts_us: frozenset[int]
    kwh_cuts_wh: tuple[mpq, ...]
    power_thresholds_kw: tuple[mpq, ...]  # every min_power and max_power, sorted

    @property
    def needs_local(self) -> bool:
        """Some restriction looks at local time, date or weekday."""
        return bool(self.times_of_day)

    @property
    def needs_energy(self) -> bool:
        """... at the energy delivered so far."""
        return bool(self.kwh_cuts_wh)

    @property
    def needs_power(self) -> bool:
        """... at the charging power."""
        return bool(self.power_thresholds_kw)


def _plan(elements: tuple[TariffElement, ...]) -> _Plan:
    unrestricted = Restrictions()
    candidates = {
        kind: tuple(
            # None: the element has no restriction, so it always applies (no check needed)
            (index, component, None if element.restrictions == unrestricted else element.restrictions)
            for index, element in enumerate(elements)
            if (component := element.component(kind)) is not None
        )
        for kind in COMPONENT_TYPES
    }
    times: set[time] = set()
    durations: set[int] = set()
    kwh: set[mpq] = set()
    power: set[mpq] = set()
    for element in elements:
        r = element.restrictions
        times.update(t for t in (r.start_time, r.end_time) if t is not None)
        if r.start_date is not None or r.end_date is not None or r.day_of_week:
            times.add(time(0))  # dates and weekdays change at local midnight
        durations.update(
            seconds * 1_000_000 for seconds in (r.min_duration, r.max_duration) if seconds is not None
        )
        kwh.update(_frac(v) * 1000 for v in (r.min_kwh, r.max_kwh) if v is not None)
        power.update(_frac(v) for v in (r.min_power, r.max_power) if v is not None)
    return _Plan(
        candidates=candidates,
        times_of_day=tuple(sorted(times)),
        duration_cuts_us=frozenset(durations),
        kwh_cuts_wh=tuple(sorted(kwh)),
        power_thresholds_kw=tuple(sorted(power)),
    )


@dataclass(frozen=True, slots=True)
class Tariff:
    currency: str
    elements: tuple[TariffElement, ...]
    min_price: Decimal | None = None  # excl. VAT
    max_price: Decimal | None = None
    plan: _Plan = field(init=False, repr=False, compare=False)
    native: Any = field(init=False, repr=False, compare=False)  # the native core's form, or None

    def __post_init__(self) -> None:
        Money.zero(self.currency)  # refuses an unknown currency
        if not self.elements:
            raise PricingError("a tariff needs at least one element")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise PricingError("min_price is above max_price")
        object.__setattr__(self, "plan", _plan(self.elements))
        object.__setattr__(self, "native", _native_tariff(self))


@dataclass(frozen=True, slots=True)
class Reading:
    """An energy register reading: cumulative Wh at an instant (timezone-aware)."""

    timestamp: datetime
    wh: Decimal | int


@dataclass(frozen=True, slots=True)
class PricedComponent:
    type: str
    element: int  # index of the tariff element it came from
    price: Decimal
    vat: Decimal | None
    volume: mpq  # kWh, hours or 1 (FLAT)
    cost: mpq  # volume x price, exact, excl. VAT

    def as_json(self) -> dict[str, Any]:
        fields = (self.type, self.element, self.price, self.vat, self.volume, self.cost)
        if self.type == FLAT:  # the same for every session of a tariff: worked out once
            return dict(_component_json(*fields))
        return _component_json.__wrapped__(*fields)


@functools.lru_cache(maxsize=256)
def _component_json(kind: str, element: int, price: Decimal, vat: Decimal | None, volume, cost) -> dict:
    return {
        "type": kind,
        "tariff_element": element,
        "price": plain(price),
        "vat": None if vat is None else plain(vat),
        "volume": _display(volume),
        "cost": _display(cost),
    }


@dataclass(frozen=True, slots=True)
class PricedPeriod:
    """A stretch of the session priced by the same elements (an OCPI ChargingPeriod)."""

    start: datetime
    end: datetime
    energy_wh: mpq
    charging: bool
    components: tuple[PricedComponent, ...]

    def as_json(self) -> dict[str, Any]:
        micros = _micros(self.end - self.start)
        return {
            "start_date_time": _iso(self.start),
            "end_date_time": _iso(self.end),
            "dimensions": [
                {"type": "ENERGY", "volume": _display(self.energy_wh, 1000)},
                {
                    "type": "TIME" if self.charging else "PARKING_TIME",
                    "volume": _display(micros, _US_PER_HOUR),
                },
            ],
            "components": [c.as_json() for c in self.components],
        }


@dataclass(frozen=True, slots=True)
class VatLine:
    rate: Decimal
    base: Decimal  # share of the total excl. VAT taxed at this rate (display: minor unit + 2)
    amount: Decimal  # rounded half-up to the minor unit

    def as_json(self) -> dict[str, str]:
        return {"rate": plain(self.rate), "base": str(self.base), "amount": str(self.amount)}


@dataclass(frozen=True, slots=True)
class PricedSession:
    currency: str
    started_at: datetime
    stopped_at: datetime
    periods: tuple[PricedPeriod, ...]
    flat: PricedComponent | None
    step_extras: tuple[PricedComponent, ...]
    energy_wh: mpq
    charging_seconds: mpq
    parking_seconds: mpq
    cost_exact: mpq  # before rounding and min/max
    total_excl: Money
    min_max_applied: str | None  # "min_price" / "max_price" / None
    vat_lines: tuple[VatLine, ...]
    total_vat: Money
    total_incl: Money

    @property
    def energy_kwh(self) -> Decimal:
        return _exact_decimal(self.energy_wh / 1000)

    def as_json(self) -> dict[str, Any]:
        """Everything the CDR keeps about how it was priced (JSON-safe, Decimal strings)."""
        return {
            "currency": self.currency,
            "charging_periods": [p.as_json() for p in self.periods],
            "flat": self.flat.as_json() if self.flat else None,
            "step_extras": [c.as_json() for c in self.step_extras],
            "total_energy_kwh": _display(self.energy_wh, 1000),
            "total_time_hours": _display(self.charging_seconds, 3600),
            "total_parking_time_hours": _display(self.parking_seconds, 3600),
            "total_cost_exact": _display(self.cost_exact),
            "min_max_applied": self.min_max_applied,
            "vat": [v.as_json() for v in self.vat_lines],
            "total_excl_vat": str(self.total_excl.amount),
            "total_vat": str(self.total_vat.amount),
            "total_incl_vat": str(self.total_incl.amount),
        }


# --- helpers -----------------------------------------------------------------------------


def _frac(value: Decimal | int) -> mpq:
    """``value`` as an exact mpq (``mpq(Decimal)`` goes through a string: six times slower)."""
    return mpq(*value.as_integer_ratio())


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds


def _exact_decimal(value: mpq) -> Decimal:
    """The Decimal of a rational: exact when it terminates, else 60 significant digits."""
    with localcontext(prec=60):
        return Decimal(int(value.numerator)) / Decimal(int(value.denominator))


def _display(value: mpq | int, per: int = 1) -> str:
    """``value / per`` for people to read (6 decimals, half-even, plain notation); totals never use it."""
    if isinstance(value, int):
        numerator, denominator = value, per
    else:  # Python ints: GMP's are slower to divide and format at this size
        numerator, denominator = int(value.numerator), int(value.denominator) * per
    negative = numerator < 0
    q, r = divmod((-numerator if negative else numerator) * 1_000_000, denominator)
    if 2 * r > denominator or (2 * r == denominator and q & 1):
        q += 1
    if q < 1_000_000:  # no whole part: "0", "0.25"
        text = f"0.{q:06d}".rstrip("0") if q else "0"
    else:  # the digits of q with a point six from the end, trailing zeros dropped
        digits = str(q)
        part = digits[-6:].rstrip("0")
        text = f"{digits[:-6]}.{part}" if part else digits[:-6]
    return f"-{text}" if negative and q else text


@functools.lru_cache(maxsize=1024)  # prices and rates: a few values, shown on every CDR
def plain(value: Decimal) -> str:
    """``Decimal`` as a plain string without trailing zeros: 0.250000 → "0.25", 1E+1 → "10"."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _iso(moment: datetime) -> str:
    if moment.tzinfo is UTC:  # what the database gives: no conversion, the offset is "+00:00"
        return moment.isoformat()[:-6] + "Z"
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


_ZERO = Decimal(0)


@functools.lru_cache(maxsize=1024)
def _fraction_of(value: Decimal) -> mpq:
    """``mpq(value)`` for the few prices, rates and thresholds of a tariff, converted once."""
    return _frac(value)


@functools.lru_cache(maxsize=256)
def _rate_decimal(rate: Decimal) -> Decimal:
    """A VAT percentage as the CDR shows it (``19.00`` → ``19``)."""
    return _exact_decimal(mpq(rate))


def _parts(value: mpq | int) -> tuple[int, int]:
    """Numerator and denominator as Python ints (GMP's are slower at this size)."""
    if isinstance(value, int):
        return value, 1
    return int(value.numerator), int(value.denominator)


def _quantize_half_even(value: mpq | int, places: int) -> Decimal:
    """``value`` to ``places`` decimals, ties to even (Decimal's default), exactly."""
    return _quantize_ratio_half_even(*_parts(value), places)


def _quantize_ratio_half_even(numerator: int, denominator: int, places: int) -> Decimal:
    q, r = divmod(abs(numerator) * 10**places, denominator)
    if 2 * r > denominator or (2 * r == denominator and q & 1):
        q += 1
    return Decimal(-q if numerator < 0 else q).scaleb(-places)


def _round(value: mpq | int, currency: str) -> Decimal:
    """``value`` rounded half-up (ties away from zero) to the currency's minor unit, exactly."""
    return _round_ratio(*_parts(value), minor_unit(currency))


def _round_ratio(numerator: int, denominator: int, places: int) -> Decimal:
    """``numerator / denominator`` rounded half-up (ties away from zero) to ``places``, exactly."""
    q, r = divmod(abs(numerator) * 10**places, denominator)
    if 2 * r >= denominator:
        q += 1
    return Decimal(-q if numerator < 0 else q).scaleb(-places)


@functools.lru_cache(maxsize=256)
def _integer_ratio(rate: Decimal) -> tuple[int, int]:
    """A VAT rate as numerator and denominator (Python ints), worked out once."""
    return rate.as_integer_ratio()


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PricingError(f"{name} must be timezone-aware")


# --- the timeline ------------------------------------------------------------------------
# Instants are microseconds since the session start: integers, except where a kWh threshold is
# crossed between two readings (an mpq). Energy is Wh since the session start: an integer
# while the register readings are whole, an mpq once interpolated.


def _number(value: Decimal | int) -> int | mpq:
    """A reading as an int when it is whole (the fast case), else an exact mpq."""
    if isinstance(value, int):
        return value
    as_int = int(value)
    return as_int if as_int == value else _frac(value)


def _floor(value) -> int:
    """``value`` rounded down to a Python int (``timedelta`` takes no GMP integer)."""
    return value if isinstance(value, int) else int(value // 1)


def _ratio(numerator, denominator) -> int | mpq:
    """``numerator / denominator`` exactly: an int when it divides, else an mpq."""
    if isinstance(numerator, int) and isinstance(denominator, int):
        q, r = divmod(numerator, denominator)
        return q if r == 0 else mpq(numerator, denominator)
    return mpq(numerator) / denominator


class _Curve:
    """Cumulative energy (Wh since session start) as a piecewise-linear function of microseconds."""

    __slots__ = ("points",)

    def __init__(self, points: list[tuple]):
        self.points = points  # (µs since start, Wh since start), strictly increasing time

    def cut_instants(self, power_thresholds_kw: tuple[mpq, ...]) -> list:
        """The reading instants where a session must be cut: the first, the last, and each one
        where the kind of reading interval changes. The kind is whether energy rises (charging
        or not) and, when prices depend on power, on which side of each power threshold the
        interval's power lies: within a run of intervals of one kind, every restriction decides
        the same, and nothing else a tariff looks at changes at a reading (time, elapsed time
        and energy thresholds are cuts of their own). So a session with a meter value a minute
        is cut only where charging starts or stops or its power crosses a threshold."""
        pts = self.points
        if len(pts) == 2:
            return [pts[0][0], pts[1][0]]
        instants = [pts[0][0], pts[-1][0]]
        if not power_thresholds_kw:  # the usual case, kept cheap: where charging starts or stops
            for (_, e0), (t1, e1), (_, e2) in zip(pts, pts[1:], pts[2:], strict=False):
                if (e1 > e0) != (e2 > e1):
                    instants.append(t1)
            return instants
        previous = None
        for (t0, e0), (t1, e1) in pairwise(pts):
            kind = (e1 > e0, *((e1 - e0) * 3_600_000 >= kw * (t1 - t0) for kw in power_thresholds_kw))
            if previous is not None and kind != previous:
                instants.append(t0)
            previous = kind
        return instants

    def time_reaching(self, wh):
        """First instant at which cumulative energy reaches ``wh`` (None if never)."""
        for (t0, e0), (t1, e1) in pairwise(self.points):
            if e0 < wh <= e1:
                return t0 + _ratio((t1 - t0) * (wh - e0), e1 - e0)
        return None


def _curve(started_at: datetime, duration_us: int, readings: Iterable[Reading], meter_start) -> _Curve:
    by_time: dict = {}
    for reading in readings:
        _require_aware(reading.timestamp, "reading timestamp")
        t = min(max(_micros(reading.timestamp - started_at), 0), duration_us)
        wh = _number(reading.wh) - meter_start
        previous = by_time.get(t)
        by_time[t] = wh if previous is None or wh > previous else previous
    by_time.setdefault(0, 0)
    points: list[tuple] = []
    highest = 0
    for t in sorted(by_time):
        if by_time[t] > highest:
            highest = by_time[t]  # energy never goes backwards
        points.append((t, highest))
    if points[-1][0] < duration_us:  # after the last reading, nothing more is known delivered:
        points.append((duration_us, highest))  # flat, so parking (a live session, no stop value)
    if duration_us == 0:  # zero-length (a charger's clock): its energy at one instant, from 0
        points = [(0, 0), (0, highest)]
    return _Curve(points)


class _Context:
    """What restrictions look at, for one segment (constant inside it). Fields a tariff never
    looks at are left ``None``. (A plain class: one is made per segment.)"""

    __slots__ = ("elapsed_us", "energy_wh", "local", "power_kw")

    def __init__(self, local: datetime | None, elapsed_us, energy_wh, power_kw) -> None:
        self.local = local
        self.elapsed_us = elapsed_us  # since session start
        self.energy_wh = energy_wh  # delivered so far
        self.power_kw = power_kw


def _holds(r: Restrictions, ctx: _Context) -> bool:
    if r.reservation is not None:
        return False  # reservation pricing never applies to a charging session
    if r.start_time is not None or r.end_time is not None:
        now = ctx.local.time().replace(tzinfo=None)
        start = r.start_time or time(0)
        end = r.end_time or time(0)
        if start < end:
            if not (start <= now < end):
                return False
        elif start > end and not (now >= start or now < end):  # wraps midnight
            return False
        # start == end: the whole day
    if r.start_date is not None or r.end_date is not None:
        local_date = ctx.local.date()
        if r.start_date is not None and local_date < r.start_date:
            return False
        if r.end_date is not None and local_date >= r.end_date:
            return False
    if r.day_of_week and DAYS[ctx.local.weekday()] not in r.day_of_week:
        return False
    if r.min_kwh is not None and ctx.energy_wh < _fraction_of(r.min_kwh) * 1000:
        return False
    if r.max_kwh is not None and ctx.energy_wh >= _fraction_of(r.max_kwh) * 1000:
        return False
    if r.min_duration is not None and ctx.elapsed_us < r.min_duration * 1_000_000:
        return False
    if r.max_duration is not None and ctx.elapsed_us >= r.max_duration * 1_000_000:
        return False
    if r.min_power is not None or r.max_power is not None:
        if ctx.power_kw is None:
            return False
        if r.min_power is not None and ctx.power_kw < _fraction_of(r.min_power):
            return False
        if r.max_power is not None and ctx.power_kw >= _fraction_of(r.max_power):
            return False
    return True


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=8192)
def _day_instants_us(zone: ZoneInfo, day: date, times: tuple[time, ...]) -> tuple[int, ...]:
    """Epoch µs of each local time on a local day; both occurrences of a time repeated when
    clocks go back (fold 0 and 1)."""
    return tuple(
        _micros(datetime.combine(day, moment, tzinfo=zone).replace(fold=fold).astimezone(UTC) - _EPOCH)
        for moment in times
        for fold in (0, 1)
    )


@functools.lru_cache(maxsize=8192)
def _offset_changes_on(zone: ZoneInfo, utc_day: date) -> tuple[int, ...]:
    """Epoch µs of each UTC-offset change (DST) of ``zone`` on a UTC day, to the microsecond."""
    changes = []
    low = datetime.combine(utc_day, time(0), tzinfo=UTC)
    day_end = low + timedelta(days=1)
    while low < day_end:
        high = low + timedelta(hours=3)
        if low.astimezone(zone).utcoffset() != high.astimezone(zone).utcoffset():
            a, b = low, high  # offset(a) != offset(b): bisect to the first instant of the new offset
            while b - a > timedelta(microseconds=1):
                mid = a + (b - a) / 2
                if mid.astimezone(zone).utcoffset() == a.astimezone(zone).utcoffset():
                    a = mid
                else:
                    b = mid
            changes.append(_micros(b - _EPOCH))
        low = high
    return tuple(changes)


_US_PER_DAY = 86_400_000_000


@functools.lru_cache(maxsize=4096)
def _local_instants_us(zone: ZoneInfo, first_utc_day: int, last_utc_day: int, times: tuple[time, ...]):
    """Sorted epoch µs where local time reaches one of ``times`` or the UTC offset changes, for
    sessions within UTC days ``first_utc_day`` to ``last_utc_day`` (days since 1970; sessions
    of the same days share the result). Local days from two before to two after the UTC days:
    every local day such a session touches, and its neighbours (any zone is within a day of UTC)."""
    instants: set[int] = set()
    day = _EPOCH.date() + timedelta(days=first_utc_day - 2)
    last = _EPOCH.date() + timedelta(days=last_utc_day + 2)
    while day <= last:
        instants.update(_day_instants_us(zone, day, times))
        day += timedelta(days=1)
    # Where clocks jump, local time crosses every skipped or repeated time at once.
    day = _EPOCH.date() + timedelta(days=first_utc_day)
    while day <= _EPOCH.date() + timedelta(days=last_utc_day):
        instants.update(_offset_changes_on(zone, day))
        day += timedelta(days=1)
    return tuple(sorted(instants))


def _breakpoints(plan: _Plan, started_at: datetime, duration_us: int, zone: ZoneInfo, curve: _Curve) -> list:
    cuts = {0, duration_us}
    cuts.update(curve.cut_instants(plan.power_thresholds_kw))
    cuts.update(plan.duration_cuts_us)
    for wh in plan.kwh_cuts_wh:
        at = curve.time_reaching(wh)
        if at is not None:
            cuts.add(at)
    if plan.times_of_day:
        start_us = _micros(started_at - _EPOCH)
        stop_us = start_us + duration_us
        instants = _local_instants_us(
            zone, start_us // _US_PER_DAY, stop_us // _US_PER_DAY, plan.times_of_day
        )
        low, high = bisect_right(instants, start_us), bisect_left(instants, stop_us)
        cuts.update(instant - start_us for instant in instants[low:high])  # strictly inside
    return sorted(c for c in cuts if 0 <= c <= duration_us)


# --- pricing -----------------------------------------------------------------------------


def price_session(
    *,
    tariff: Tariff,
    started_at: datetime,
    stopped_at: datetime,
    meter_start_wh: Decimal | int,
    readings: Sequence[Reading],
    time_zone: str,
) -> PricedSession:
    """Price one session (finished, or up to now for an estimate) with ``tariff``.

    ``readings`` are energy register readings in Wh, in any order, including the stop reading
    (``meter_stop_wh`` at ``stopped_at``) when there is one; ``time_zone`` is the site's IANA name.
    """
    _require_aware(started_at, "started_at")
    _require_aware(stopped_at, "stopped_at")
    if stopped_at < started_at:
        raise PricingError("stopped_at is before started_at")
    try:
        zone = ZoneInfo(time_zone)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError; "../x" a ValueError
        raise PricingError(f"unknown time zone {time_zone!r}") from None
    currency = tariff.currency
    plan = tariff.plan
    duration_us = _micros(stopped_at - started_at)
    curve = _curve(started_at, duration_us, readings, _number(meter_start_wh))
    cuts = _breakpoints(plan, started_at, duration_us, zone, curve)
    if len(cuts) == 1:
        cuts = [cuts[0], cuts[0]]

    periods: list[PricedPeriod] = []
    last_component: dict[str, tuple[int, PriceComponent]] = {}
    volumes: dict[str, mpq | int] = dict.fromkeys(DIMENSIONS, 0)
    energy_total = charging_us = parking_us = 0
    # The period being built: consecutive segments priced by the same elements merge into it.
    # [key, start µs, end µs, energy Wh, charging, [(kind, index, component)], [volume per choice]]
    pending: list | None = None

    def flush() -> None:
        if pending is None:
            return
        _, a, b, energy, charging, choice, chosen_volumes = pending
        periods.append(
            PricedPeriod(
                start=started_at + timedelta(microseconds=_floor(a)),
                end=started_at + timedelta(microseconds=_floor(b)),
                energy_wh=mpq(energy),
                charging=charging,
                components=tuple(
                    PricedComponent(kind, index, c.price, c.vat, volume, volume * _fraction_of(c.price))
                    for (kind, index, c), volume in zip(choice, chosen_volumes, strict=True)
                ),
            )
        )

    # A segment may span several reading intervals, all of one kind (the cuts say where that
    # changes): all charging or all not, and all on the same side of every power threshold, so
    # the power of its first interval decides as any would. Walk the intervals alongside the
    # segments: linear in readings (a
    # session with a meter value a minute has hundreds). After the last reading, the last
    # interval holds and energy is flat.
    points = curve.points
    last_interval = len(points) - 2

    def interval_reaching(t, k: int) -> int:
        """The interval ``j >= k`` with t_j < t <= t_j+1 (or the last one)."""
        while k < last_interval and points[k + 1][0] < t:
            k += 1
        return k

    def energy_at(t, j: int):
        (t0, e0), (t1, e1) = points[j], points[j + 1]
        return e1 if t >= t1 else e0 + _ratio((e1 - e0) * (t - t0), t1 - t0)

    needs_local, needs_energy, needs_power = plan.needs_local, plan.needs_energy, plan.needs_power
    priced_dimensions = [(kind, plan.candidates[kind]) for kind in DIMENSIONS]
    k = 0
    for a, b in pairwise(cuts):
        while k < last_interval and points[k + 1][0] <= a:
            k += 1
        (t0, e0), (t1, e1) = points[k], points[k + 1]
        mid = _ratio(a + b, 2)
        energy = energy_at(b, interval_reaching(b, k)) - energy_at(a, k) if b > a else e1 - e0
        charging = e1 > e0
        ctx = _Context(
            (started_at + timedelta(microseconds=_floor(mid))).astimezone(zone) if needs_local else None,
            mid,
            energy_at(mid, interval_reaching(mid, k)) if needs_energy else None,
            _ratio((e1 - e0) * 3_600_000, t1 - t0) if needs_power and t1 > t0 else None,
        )
        span = b - a
        hours = _ratio(span, _US_PER_HOUR)
        energy_total += energy
        if charging:
            charging_us += span
            segment_volumes = (_ratio(energy, 1000), hours, 0)  # in DIMENSIONS order
        else:
            parking_us += span
            segment_volumes = (_ratio(energy, 1000), 0, hours)

        choice = []
        chosen_volumes = []
        for (kind, candidates), volume in zip(priced_dimensions, segment_volumes, strict=True):
            if volume == 0:
                continue  # nothing of this dimension here (e.g. no energy while parking)
            for index, component, restrictions in candidates:
                if restrictions is None or _holds(restrictions, ctx):
                    choice.append((kind, index, component))
                    chosen_volumes.append(volume)
                    volumes[kind] += volume
                    last_component[kind] = (index, component)
                    break

        key = (charging, tuple((kind, index) for kind, index, _ in choice))
        if pending is not None and pending[0] == key:
            pending[2] = b
            pending[3] += energy
            pending[6] = [sum_ + volume for sum_, volume in zip(pending[6], chosen_volumes, strict=True)]
        else:
            flush()
            pending = [key, a, b, energy, charging, choice, chosen_volumes]
    flush()

    # Step size: the dimension's total volume rounded up, priced at its last component.
    extras: list[PricedComponent] = []
    for kind, (index, component) in last_component.items():
        unit = _STEP_UNIT[kind]
        base_units = volumes[kind] / unit  # Wh or seconds
        stepped = math.ceil(base_units / component.step_size) * component.step_size
        if stepped > base_units:
            extra = (stepped - base_units) * unit
            extras.append(
                PricedComponent(
                    kind, index, component.price, component.vat, extra, extra * _fraction_of(component.price)
                )
            )

    flat = None
    first_point = curve.points[1] if len(curve.points) > 1 else curve.points[0]
    start_power = (
        _ratio((first_point[1] - curve.points[0][1]) * 3_600_000, first_point[0])
        if plan.needs_power and first_point[0] > 0
        else None
    )
    start_ctx = _Context(started_at.astimezone(zone) if needs_local else None, 0, 0, start_power)
    for index, component, restrictions in plan.candidates[FLAT]:
        if restrictions is None or _holds(restrictions, start_ctx):
            flat = PricedComponent(
                FLAT, index, component.price, component.vat, 1, _fraction_of(component.price)
            )
            break

    all_components = [c for p in periods for c in p.components] + extras + ([flat] if flat else [])
    cost_exact = sum((c.cost for c in all_components), mpq(0))
    total = _round(cost_exact, currency)
    applied = None
    if tariff.min_price is not None and total < tariff.min_price:
        total, applied = round_half_up(tariff.min_price, currency), "min_price"
    elif tariff.max_price is not None and total > tariff.max_price:
        total, applied = round_half_up(tariff.max_price, currency), "max_price"

    vat_lines = _vat_lines(tariff, all_components, cost_exact, total, currency)
    total_vat = sum((v.amount for v in vat_lines), Decimal(0))
    total_vat = round_half_up(total_vat, currency)
    return PricedSession(
        currency=currency,
        started_at=started_at,
        stopped_at=stopped_at,
        periods=tuple(periods),
        flat=flat,
        step_extras=tuple(extras),
        energy_wh=mpq(energy_total),
        charging_seconds=mpq(charging_us) / 1_000_000,
        parking_seconds=mpq(parking_us) / 1_000_000,
        cost_exact=cost_exact,
        total_excl=Money(total, currency),
        min_max_applied=applied,
        vat_lines=vat_lines,
        total_vat=Money(total_vat, currency),
        total_incl=Money(total + total_vat, currency),
    )


def _vat_lines(
    tariff: Tariff, components: list[PricedComponent], cost_exact: mpq, total: Decimal, currency: str
) -> tuple[VatLine, ...]:
    rates = {component.vat or _ZERO for component in components}
    if cost_exact != 0 and len(rates) == 1:  # one rate (the usual case): its base is the total
        if total == 0:
            return ()
        (rate,) = rates
        numerator, denominator = total.as_integer_ratio()
        rate_numerator, rate_denominator = _integer_ratio(rate)
        places = minor_unit(currency)
        return (
            VatLine(
                rate=_rate_decimal(rate),
                base=_quantize_ratio_half_even(numerator, denominator, places + 2),
                amount=_round_ratio(numerator * rate_numerator, denominator * rate_denominator * 100, places),
            ),
        )
    by_rate: dict[Decimal, mpq] = {}  # VAT percentage -> exact cost at that rate
    for component in components:
        rate = component.vat or _ZERO
        by_rate[rate] = by_rate.get(rate, 0) + component.cost
    total_f = _frac(total)
    if cost_exact != 0:
        bases = {rate: cost * total_f / cost_exact for rate, cost in by_rate.items()}
    elif total_f != 0:
        first = tariff.elements[0].price_components[0]
        bases = {first.vat or _ZERO: total_f}
    else:
        bases = {}
    places = minor_unit(currency) + 2
    lines = []
    for rate in sorted(bases):
        base = bases[rate]
        if base == 0:
            continue
        lines.append(
            VatLine(
                rate=_rate_decimal(rate),
                base=_quantize_half_even(base, places),
                amount=_round(base * _fraction_of(rate) / 100, currency),
            )
        )
    return tuple(lines)


# --- the CDR form, and the native core ------------------------------------------------------
# The CDR path prices a million sessions a run. For the tariffs and readings most sessions
# have, a C core (billing/native/pricing_core.c) computes the same result as the engine above
# and writes the CDR's JSON text itself: no Python object per period. It is optional: without
# it (no compiler), or out of its scope, or on an overflow of its 128-bit arithmetic, the
# engine above prices the session. billing/tests/test_pricing_native.py holds the two to the
# same output, byte for byte, on random tariffs and sessions.

try:
    from billing import _pricing_core
except ImportError:  # not built: the Python engine prices everything
    _pricing_core = None

_NATIVE_KINDS = (ENERGY, TIME, PARKING_TIME, FLAT)  # the core's order
# Restrictions the core does not evaluate: a tariff with any of them is priced in Python.
_NOT_NATIVE = ("min_kwh", "max_kwh", "min_duration", "max_duration", "min_power", "max_power")
_EPOCH_DATE = date(1970, 1, 1)


class CdrPricing(NamedTuple):
    """A priced session as a CDR row keeps it. Amounts and volumes are their exact decimal
    text (``str`` of the engine's ``Decimal``): the row is written as text, and a ``Decimal``
    made only to be printed again costs more than the rest of the row at a million CDRs."""

    pricing: str  # PricedSession.as_json(), as compact JSON text
    energy_wh: int  # rounded half-up
    energy_kwh: str
    time_hours: str
    parking_time_hours: str
    currency: str
    total_excl: str
    total_vat: str
    total_incl: str
    vat: str  # the VAT lines, as JSON text
    vat_rate: str | None  # the rate, when there is one VAT line
    started: str  # the session's start and stop in UTC, as datetime.isoformat() writes them
    stopped: str


def native_available() -> bool:
    """Whether the native core is built (``make install`` builds it when gcc is there)."""
    return _pricing_core is not None


def price_session_cdr(
    *,
    tariff: Tariff,
    started_at: datetime,
    stopped_at: datetime,
    meter_start_wh: Decimal | int,
    readings: Sequence[Reading],
    time_zone: str,
) -> CdrPricing:
    """:func:`price_session` in the form a CDR row keeps; the same arguments and errors.

    The native core prices the session when the tariff and readings are in its scope, else
    the engine does; the output is the same either way."""
    readings = tuple(readings)  # read twice when the core declines the session
    if tariff.native is not None:
        cdr = _price_native(tariff, started_at, stopped_at, meter_start_wh, readings, time_zone)
        if cdr is not None:
            return cdr
    return cdr_form(
        price_session(
            tariff=tariff,
            started_at=started_at,
            stopped_at=stopped_at,
            meter_start_wh=meter_start_wh,
            readings=readings,
            time_zone=time_zone,
        )
    )


def cdr_form(priced: PricedSession) -> CdrPricing:
    """The engine's result in the form a CDR row keeps."""
    pricing = priced.as_json()
    vat = pricing["vat"]
    return CdrPricing(
        pricing=orjson.dumps(pricing).decode(),
        energy_wh=int((2 * priced.energy_wh + 1) // 2),
        energy_kwh=pricing["total_energy_kwh"],
        time_hours=pricing["total_time_hours"],
        parking_time_hours=pricing["total_parking_time_hours"],
        currency=priced.currency,
        total_excl=pricing["total_excl_vat"],
        total_vat=pricing["total_vat"],
        total_incl=pricing["total_incl_vat"],
        vat=orjson.dumps(vat).decode(),
        vat_rate=vat[0]["rate"] if len(vat) == 1 else None,
        started=priced.started_at.astimezone(UTC).isoformat(),
        stopped=priced.stopped_at.astimezone(UTC).isoformat(),
    )


def _price_native(tariff, started_at, stopped_at, meter_start_wh, readings, time_zone) -> CdrPricing | None:
    """The session priced by the native core, or None: out of its scope, an overflow, or an
    input the engine refuses (then the engine raises its own error).

    The core reads the times and readings itself (``price_session`` in its source). Only times
    with a fixed offset are in its scope (UTC, from the database): the engine subtracts two
    times of one ZoneInfo as wall clocks, which epoch arithmetic would not follow across a
    clock change. Readings must be whole Wh within 64 bits."""
    zone = _zone_or_none(time_zone)
    if zone is None:
        return None
    out = _pricing_core.price_session(
        tariff.native,
        started_at,
        stopped_at,
        meter_start_wh,
        readings,
        _native_zone,
        zone,
        tariff.plan.times_of_day,
    )
    if out is None:  # out of scope, or an overflow of its arithmetic
        return None
    # The core's tuple is CdrPricing's fields without the currency, which the tariff has.
    return CdrPricing(*out[:5], tariff.currency, *out[5:])


@functools.lru_cache(maxsize=1024)
def _zone_or_none(name: str) -> ZoneInfo | None:
    """The zone of an IANA name, None for a name that is none (the engine gives the error)."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return None


@functools.lru_cache(maxsize=4096)
def _native_zone(zone: ZoneInfo, first_utc_day: int, last_utc_day: int, times: tuple[time, ...]):
    """For sessions within these UTC days: the epoch µs where local time reaches one of
    ``times`` or the offset changes (as the engine cuts), the offset changes, and the UTC offset
    (µs) before the first change and after each, as int64 bytes for the core."""
    changes = [
        change
        for day in range(first_utc_day, last_utc_day + 1)
        for change in _offset_changes_on(zone, _EPOCH_DATE + timedelta(days=day))
    ]
    starts = [_EPOCH + timedelta(days=first_utc_day)] + [_EPOCH + timedelta(microseconds=c) for c in changes]
    offsets = [_micros(moment.astimezone(zone).utcoffset()) for moment in starts]
    instants = _local_instants_us(zone, first_utc_day, last_utc_day, times)
    return tuple(array("q", values).tobytes() for values in (instants, changes, offsets))


def _micro_of_day(moment: time | None) -> int:
    if moment is None:
        return 0
    return ((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1_000_000 + moment.microsecond


def _native_tariff(tariff: Tariff):
    """The tariff in the native core's form (see compile_tariff in its source), or None: no
    core, or a restriction or number outside its scope. Never raises: a tariff the core cannot
    take is priced by the engine, which gives its own errors."""
    if _pricing_core is None:
        return None
    try:
        return _compile_native(tariff)
    except (ArithmeticError, ValueError, TypeError):  # a number beyond the core (OverflowError too)
        return None


def _compile_native(tariff: Tariff):
    elements = tariff.elements
    if any(getattr(e.restrictions, name) is not None for e in elements for name in _NOT_NATIVE):
        return None
    restrictions = []
    for element in elements:
        r = element.restrictions
        restrictions.append(
            (
                int(r.start_time is not None or r.end_time is not None),
                _micro_of_day(r.start_time),
                _micro_of_day(r.end_time),
                int(r.start_date is not None),
                (r.start_date - _EPOCH_DATE).days if r.start_date is not None else 0,
                int(r.end_date is not None),
                (r.end_date - _EPOCH_DATE).days if r.end_date is not None else 0,
                functools.reduce(operator.or_, (1 << DAYS.index(day) for day in r.day_of_week), 0),
                int(r.reservation is not None),
            )
        )
    rate_ids: dict[Decimal, int] = {}  # keyed by value, as the engine groups VAT (19 == 19.00)
    rates = []

    def rate_id(vat: Decimal | None) -> int:
        rate = vat or _ZERO
        if rate not in rate_ids:
            rate_ids[rate] = len(rates)
            rates.append((*_integer_ratio(rate), plain(_rate_decimal(rate)).encode()))
        return rate_ids[rate]

    candidates = []
    for kind in _NATIVE_KINDS:
        listed = []
        for index, component, restricted in tariff.plan.candidates[kind]:
            fields = (kind, index, component.price, component.vat)
            if kind == FLAT:  # the same for every session: all of it, here
                json = orjson.dumps(_component_json(*fields, 1, _fraction_of(component.price)))
            else:  # the core writes the volume and cost after this
                json = orjson.dumps(_component_json(*fields, 0, 0))
                json = json[: json.index(b'"volume":')] + b'"volume":"'
            listed.append(
                (
                    index,
                    -1 if restricted is None else index,
                    *component.price.as_integer_ratio(),
                    rate_id(component.vat),
                    component.step_size,
                    json,
                )
            )
        candidates.append(tuple(listed))
    first_rate = rate_id(elements[0].price_components[0].vat)
    places = minor_unit(tariff.currency)
    bounds = [
        None
        if bound is None
        else (*bound.as_integer_ratio(), int(round_half_up(bound, tariff.currency).scaleb(places)))
        for bound in (tariff.min_price, tariff.max_price)
    ]
    head = orjson.dumps({"currency": tariff.currency})[:-1] + b',"charging_periods":['
    # None when a price, rate or bound does not fit in 64 bits. Tuples: the core keeps
    # pointers into them for the tariff's life.
    return _pricing_core.compile_tariff(
        places,
        int(tariff.plan.needs_local),
        head,
        tuple(restrictions),
        tuple(candidates),
        tuple(rates),
        first_rate,
        *bounds,
    )
