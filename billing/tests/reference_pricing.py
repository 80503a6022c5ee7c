"""The pricing engine as it was before the performance work (commit 33f7e55), kept verbatim as
the oracle of ``test_engine_matches_reference``: the fast engine must price every session to
the same JSON. Not used by the product. Do not edit; it is the specification in code.

Two changes since, made in both engines: the stretch after the last reading (a live session, or
a session without a stop value) has no energy, so it is parking, as docs/billing.md §5 says (it
used to take the charging state of the interval before it); and a session that stops at or
before its start (a charger's clock) keeps its energy, delivered at one instant (its readings
all fell on that instant and the first one became the baseline: 0 kWh).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from evcharge.core.money import Money, minor_unit, round_half_up

ENERGY = "ENERGY"
TIME = "TIME"
PARKING_TIME = "PARKING_TIME"
FLAT = "FLAT"
COMPONENT_TYPES = (ENERGY, FLAT, PARKING_TIME, TIME)
DIMENSIONS = (ENERGY, TIME, PARKING_TIME)  # priced per segment; FLAT once per session
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")

# Display precision of per-period volumes and costs on a CDR (totals never use these).
_DISPLAY = Decimal("0.000001")


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
class Tariff:
    currency: str
    elements: tuple[TariffElement, ...]
    min_price: Decimal | None = None  # excl. VAT
    max_price: Decimal | None = None

    def __post_init__(self) -> None:
        Money.zero(self.currency)  # refuses an unknown currency
        if not self.elements:
            raise PricingError("a tariff needs at least one element")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise PricingError("min_price is above max_price")


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
    volume: Fraction  # kWh, hours or 1 (FLAT)
    cost: Fraction  # volume x price, exact, excl. VAT

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "tariff_element": self.element,
            "price": plain(self.price),
            "vat": None if self.vat is None else plain(self.vat),
            "volume": _display(self.volume),
            "cost": _display(self.cost),
        }


@dataclass(frozen=True, slots=True)
class PricedPeriod:
    """A stretch of the session priced by the same elements (an OCPI ChargingPeriod)."""

    start: datetime
    end: datetime
    energy_wh: Fraction
    charging: bool
    components: tuple[PricedComponent, ...]

    def as_json(self) -> dict[str, Any]:
        seconds = Fraction(_micros(self.end - self.start), 10**6)
        return {
            "start_date_time": _iso(self.start),
            "end_date_time": _iso(self.end),
            "dimensions": [
                {"type": "ENERGY", "volume": _display(self.energy_wh / 1000)},
                {"type": "TIME" if self.charging else "PARKING_TIME", "volume": _display(seconds / 3600)},
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
    energy_wh: Fraction
    charging_seconds: Fraction
    parking_seconds: Fraction
    cost_exact: Fraction  # before rounding and min/max
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
            "total_energy_kwh": _display(self.energy_wh / 1000),
            "total_time_hours": _display(self.charging_seconds / 3600),
            "total_parking_time_hours": _display(self.parking_seconds / 3600),
            "total_cost_exact": _display(self.cost_exact),
            "min_max_applied": self.min_max_applied,
            "vat": [v.as_json() for v in self.vat_lines],
            "total_excl_vat": str(self.total_excl.amount),
            "total_vat": str(self.total_vat.amount),
            "total_incl_vat": str(self.total_incl.amount),
        }


# --- helpers -----------------------------------------------------------------------------


def _frac(value: Decimal | int) -> Fraction:
    return Fraction(value)  # exact for Decimal and int


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds


def _exact_decimal(value: Fraction) -> Decimal:
    """The Decimal of a Fraction: exact when it terminates, else 60 significant digits."""
    with localcontext(prec=60):
        return Decimal(value.numerator) / Decimal(value.denominator)


def _display(value: Fraction) -> str:
    """A volume or cost for people to read (6 decimals, plain notation); totals never use it."""
    with localcontext(prec=60):
        return plain(_exact_decimal(value).quantize(_DISPLAY))


def plain(value: Decimal) -> str:
    """``Decimal`` as a plain string without trailing zeros: 0.250000 → "0.25", 1E+1 → "10"."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _round(value: Fraction, currency: str) -> Decimal:
    return round_half_up(_exact_decimal(value), currency)


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PricingError(f"{name} must be timezone-aware")


# --- the timeline ------------------------------------------------------------------------


class _Curve:
    """Cumulative energy (Wh since session start) as a piecewise-linear function of seconds."""

    def __init__(self, points: list[tuple[Fraction, Fraction]]):
        self.points = points  # (seconds since start, Wh since start), strictly increasing time

    def energy_at(self, t: Fraction) -> Fraction:
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (t0, e0), (t1, e1) in pairwise(pts):
            if t <= t1:
                return e0 + (e1 - e0) * (t - t0) / (t1 - t0)
        return pts[-1][1]

    def interval_of(self, t: Fraction) -> tuple[Fraction, Fraction, Fraction, Fraction]:
        """The reading interval (t0, e0, t1, e1) holding instant ``t`` (a segment midpoint)."""
        pts = self.points
        for (t0, e0), (t1, e1) in pairwise(pts):
            if t0 <= t <= t1:
                return t0, e0, t1, e1
        (t0, e0), (t1, e1) = pts[-2], pts[-1]
        return t0, e0, t1, e1

    def time_reaching(self, wh: Fraction) -> Fraction | None:
        """First instant at which cumulative energy reaches ``wh`` (None if never)."""
        for (t0, e0), (t1, e1) in pairwise(self.points):
            if e0 < wh <= e1:
                return t0 + (t1 - t0) * (wh - e0) / (e1 - e0)
        return None


def _curve(
    started_at: datetime, stopped_at: datetime, readings: Iterable[Reading], meter_start: Fraction
) -> _Curve:
    duration = Fraction(_micros(stopped_at - started_at), 10**6)
    by_time: dict[Fraction, Fraction] = {}
    for reading in readings:
        _require_aware(reading.timestamp, "reading timestamp")
        t = Fraction(_micros(reading.timestamp - started_at), 10**6)
        t = min(max(t, Fraction(0)), duration)
        wh = _frac(reading.wh) - meter_start
        by_time[t] = max(by_time.get(t, wh), wh)
    by_time.setdefault(Fraction(0), Fraction(0))
    points: list[tuple[Fraction, Fraction]] = []
    highest = Fraction(0)
    for t in sorted(by_time):
        highest = max(highest, by_time[t])  # energy never goes backwards
        points.append((t, highest))
    if points[-1][0] < duration:  # changed since 33f7e55: flat after the last reading
        points.append((duration, highest))
    if duration == 0:  # changed since 33f7e55: a zero-length session keeps its energy
        points = [(Fraction(0), Fraction(0)), (Fraction(0), highest)]
    return _Curve(points)


@dataclass(frozen=True, slots=True)
class _Context:
    """What restrictions look at, for one segment (constant inside it)."""

    local: datetime
    elapsed: Fraction  # seconds since session start
    energy_wh: Fraction  # delivered so far
    power_kw: Fraction | None


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
    local_date = ctx.local.date()
    if r.start_date is not None and local_date < r.start_date:
        return False
    if r.end_date is not None and local_date >= r.end_date:
        return False
    if r.day_of_week and DAYS[ctx.local.weekday()] not in r.day_of_week:
        return False
    if r.min_kwh is not None and ctx.energy_wh < _frac(r.min_kwh) * 1000:
        return False
    if r.max_kwh is not None and ctx.energy_wh >= _frac(r.max_kwh) * 1000:
        return False
    if r.min_duration is not None and ctx.elapsed < r.min_duration:
        return False
    if r.max_duration is not None and ctx.elapsed >= r.max_duration:
        return False
    if r.min_power is not None or r.max_power is not None:
        if ctx.power_kw is None:
            return False
        if r.min_power is not None and ctx.power_kw < _frac(r.min_power):
            return False
        if r.max_power is not None and ctx.power_kw >= _frac(r.max_power):
            return False
    return True


def _breakpoints(
    tariff: Tariff, started_at: datetime, stopped_at: datetime, zone: ZoneInfo, curve: _Curve
) -> list[Fraction]:
    duration = Fraction(_micros(stopped_at - started_at), 10**6)
    cuts: set[Fraction] = {Fraction(0), duration}
    cuts.update(t for t, _ in curve.points)
    times_of_day: set[time] = set()
    for element in tariff.elements:
        r = element.restrictions
        times_of_day.update(t for t in (r.start_time, r.end_time) if t is not None)
        if r.start_date is not None or r.end_date is not None or r.day_of_week:
            times_of_day.add(time(0))  # dates and weekdays change at local midnight
        for seconds in (r.min_duration, r.max_duration):
            if seconds is not None:
                cuts.add(Fraction(seconds))
        for kwh in (r.min_kwh, r.max_kwh):
            if kwh is not None:
                at = curve.time_reaching(_frac(kwh) * 1000)
                if at is not None:
                    cuts.add(at)
    if times_of_day:
        duration_us = _micros(stopped_at - started_at)
        day = started_at.astimezone(zone).date() - timedelta(days=1)
        last_day = stopped_at.astimezone(zone).date() + timedelta(days=1)
        instants = []
        while day <= last_day:
            for moment in times_of_day:
                # Both occurrences of a local time repeated when clocks go back (fold 0 and 1).
                for fold in (0, 1):
                    instants.append(
                        datetime.combine(day, moment, tzinfo=zone).replace(fold=fold).astimezone(UTC)
                    )
            day += timedelta(days=1)
        # Where clocks jump, local time crosses every skipped or repeated time at once.
        instants += _offset_changes(zone, started_at, stopped_at)
        for instant in instants:
            offset = _micros(instant - started_at)
            if 0 < offset < duration_us:
                cuts.add(Fraction(offset, 10**6))
    return sorted(c for c in cuts if 0 <= c <= duration)


def _offset_changes(zone: ZoneInfo, start: datetime, stop: datetime) -> list[datetime]:
    """UTC instants in [start, stop] where the zone's UTC offset changes (DST), to the microsecond."""
    changes = []
    low = start.astimezone(UTC)
    while low < stop:
        high = min(low + timedelta(hours=12), stop.astimezone(UTC))
        if low.astimezone(zone).utcoffset() != high.astimezone(zone).utcoffset():
            a, b = low, high  # offset(a) != offset(b): bisect to the first instant of the new offset
            while b - a > timedelta(microseconds=1):
                mid = a + (b - a) / 2
                if mid.astimezone(zone).utcoffset() == a.astimezone(zone).utcoffset():
                    a = mid
                else:
                    b = mid
            changes.append(b)
        low = high
    return changes


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
    zone = ZoneInfo(time_zone)
    currency = tariff.currency
    curve = _curve(started_at, stopped_at, readings, _frac(meter_start_wh))
    cuts = _breakpoints(tariff, started_at, stopped_at, zone, curve)
    if len(cuts) == 1:
        cuts = [cuts[0], cuts[0]]

    periods: list[PricedPeriod] = []
    last_component: dict[str, tuple[int, PriceComponent]] = {}
    volumes: dict[str, Fraction] = {d: Fraction(0) for d in DIMENSIONS}
    energy_total = charging_s = parking_s = Fraction(0)
    pending: dict[str, Any] | None = None

    def flush() -> None:
        if pending is None:
            return
        components = []
        for kind, (index, component) in pending["choice"].items():
            volume = pending["volume"][kind]
            components.append(
                PricedComponent(
                    kind, index, component.price, component.vat, volume, volume * _frac(component.price)
                )
            )
        periods.append(
            PricedPeriod(
                start=pending["start"],
                end=pending["end"],
                energy_wh=pending["energy"],
                charging=pending["charging"],
                components=tuple(components),
            )
        )

    for a, b in pairwise(cuts):
        mid = (a + b) / 2
        t0, e0, t1, e1 = curve.interval_of(mid)
        energy = curve.energy_at(b) - curve.energy_at(a) if b > a else e1 - e0
        charging = e1 > e0
        power = (e1 - e0) / (t1 - t0) * 3600 / 1000 if t1 > t0 else None
        ctx = _Context(
            local=(started_at + timedelta(microseconds=math.floor(mid * 10**6))).astimezone(zone),
            elapsed=mid,
            energy_wh=curve.energy_at(mid),
            power_kw=power,
        )
        seconds = b - a
        segment_volume = {
            ENERGY: energy / 1000,
            TIME: seconds / 3600 if charging else Fraction(0),
            PARKING_TIME: Fraction(0) if charging else seconds / 3600,
        }
        energy_total += energy
        if charging:
            charging_s += seconds
        else:
            parking_s += seconds

        choice: dict[str, tuple[int, PriceComponent]] = {}
        for kind in DIMENSIONS:
            if segment_volume[kind] == 0:
                continue  # nothing of this dimension here (e.g. no energy while parking)
            for index, element in enumerate(tariff.elements):
                component = element.component(kind)
                if component is not None and _holds(element.restrictions, ctx):
                    choice[kind] = (index, component)
                    break
        for kind, chosen in choice.items():
            volumes[kind] += segment_volume[kind]
            last_component[kind] = chosen

        start = started_at + timedelta(microseconds=math.floor(a * 10**6))
        end = started_at + timedelta(microseconds=math.floor(b * 10**6))
        key = (charging, tuple(sorted((k, i) for k, (i, _) in choice.items())))
        if pending is not None and pending["key"] == key:
            pending["end"] = end
            pending["energy"] += energy
            for kind in choice:
                pending["volume"][kind] += segment_volume[kind]
        else:
            flush()
            pending = {
                "key": key,
                "start": start,
                "end": end,
                "energy": energy,
                "charging": charging,
                "choice": choice,
                "volume": {kind: segment_volume[kind] for kind in choice},
            }
    flush()

    # Step size: the dimension's total volume rounded up, priced at its last component.
    extras: list[PricedComponent] = []
    unit = {ENERGY: Fraction(1, 1000), TIME: Fraction(1, 3600), PARKING_TIME: Fraction(1, 3600)}
    for kind, (index, component) in last_component.items():
        base_units = volumes[kind] / unit[kind]  # Wh or seconds
        stepped = math.ceil(base_units / component.step_size) * component.step_size
        if stepped > base_units:
            extra = (stepped - base_units) * unit[kind]
            extras.append(
                PricedComponent(
                    kind, index, component.price, component.vat, extra, extra * _frac(component.price)
                )
            )

    flat = None
    first_point = curve.points[1] if len(curve.points) > 1 else curve.points[0]
    start_power = (
        (first_point[1] - curve.points[0][1]) / first_point[0] * 3600 / 1000 if first_point[0] > 0 else None
    )
    start_ctx = _Context(
        local=started_at.astimezone(zone), elapsed=Fraction(0), energy_wh=Fraction(0), power_kw=start_power
    )
    for index, element in enumerate(tariff.elements):
        component = element.component(FLAT)
        if component is not None and _holds(element.restrictions, start_ctx):
            flat = PricedComponent(
                FLAT, index, component.price, component.vat, Fraction(1), _frac(component.price)
            )
            break

    all_components = [c for p in periods for c in p.components] + extras + ([flat] if flat else [])
    cost_exact = sum((c.cost for c in all_components), Fraction(0))
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
        energy_wh=energy_total,
        charging_seconds=charging_s,
        parking_seconds=parking_s,
        cost_exact=cost_exact,
        total_excl=Money(total, currency),
        min_max_applied=applied,
        vat_lines=vat_lines,
        total_vat=Money(total_vat, currency),
        total_incl=Money(total + total_vat, currency),
    )


def _vat_lines(
    tariff: Tariff, components: list[PricedComponent], cost_exact: Fraction, total: Decimal, currency: str
) -> tuple[VatLine, ...]:
    by_rate: dict[Fraction, Fraction] = {}
    for component in components:
        rate = _frac(component.vat or Decimal(0))
        by_rate[rate] = by_rate.get(rate, Fraction(0)) + component.cost
    total_f = _frac(total)
    if cost_exact != 0:
        bases = {rate: cost * total_f / cost_exact for rate, cost in by_rate.items()}
    elif total_f != 0:
        first = tariff.elements[0].price_components[0]
        bases = {_frac(first.vat or Decimal(0)): total_f}
    else:
        bases = {}
    display = Decimal(1).scaleb(-(minor_unit(currency) + 2))
    lines = []
    for rate in sorted(bases):
        base = bases[rate]
        if base == 0:
            continue
        lines.append(
            VatLine(
                rate=_exact_decimal(rate),
                base=_exact_decimal(base).quantize(display),
                amount=_round(base * rate / 100, currency),
            )
        )
    return tuple(lines)
