"""OCPI 2.2.1 tariff JSON ↔ the pricing engine's :class:`billing.pricing.Tariff`. Pure.

The API takes and returns this JSON; a CDR keeps it as its tariff snapshot and can always be
re-priced from it (:func:`tariff_from_ocpi`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.pricing import (
    COMPONENT_TYPES,
    DAYS,
    PriceComponent,
    PricingError,
    Restrictions,
    Tariff,
    TariffElement,
)
from evcharge.core.money import MINOR_UNITS

RESTRICTION_FIELDS = (
    "start_time",
    "end_time",
    "start_date",
    "end_date",
    "min_kwh",
    "max_kwh",
    "min_current",
    "max_current",
    "min_power",
    "max_power",
    "min_duration",
    "max_duration",
    "day_of_week",
    "reservation",
)


class OcpiError(PricingError):
    """Invalid OCPI tariff JSON; ``details`` maps a JSON path to the problem."""

    def __init__(self, path: str, problem: str):
        self.details = {path: [problem]}
        super().__init__(f"{path}: {problem}")


def to_decimal(
    value: Any, path: str, *, minimum: Decimal | None = Decimal(0), places: int = 6, below: int = 10**8
) -> Decimal:
    """A JSON number or decimal string as Decimal (floats via their shortest repr, never binary).

    At most ``places`` decimals and below ``below``: what the database column holds exactly.
    """
    if isinstance(value, bool) or value is None:
        raise OcpiError(path, "must be a number")
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise OcpiError(path, "must be a number") from None
    if not number.is_finite():
        raise OcpiError(path, "must be a finite number")
    if minimum is not None and number < minimum:
        raise OcpiError(path, f"must be at least {minimum}")
    if abs(number) >= below:  # first: quantizing a huge number overflows the context
        raise OcpiError(path, f"must be below {below}")
    if number.as_tuple().exponent < -places and number != number.quantize(Decimal(1).scaleb(-places)):
        raise OcpiError(path, f"at most {places} decimals")
    return number


def _int(value: Any, path: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise OcpiError(path, "must be an integer")
    try:
        number = int(value)
    except ValueError:
        raise OcpiError(path, "must be an integer") from None
    if number < minimum:
        raise OcpiError(path, f"must be at least {minimum}")
    return number


def _time(value: Any, path: str) -> time:
    try:
        hours, minutes = str(value).split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except ValueError:
        raise OcpiError(path, "must be HH:MM (24 h)") from None


def _date(value: Any, path: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise OcpiError(path, "must be YYYY-MM-DD") from None


def restrictions_from_ocpi(data: Mapping[str, Any] | None, path: str) -> Restrictions:
    if data is None:
        return Restrictions()
    if not isinstance(data, Mapping):
        raise OcpiError(path, "must be an object")
    unknown = set(data) - set(RESTRICTION_FIELDS)
    if unknown:
        raise OcpiError(path, f"unknown fields {sorted(unknown)}")
    kw: dict[str, Any] = {}
    for name in ("start_time", "end_time"):
        if data.get(name) is not None:
            kw[name] = _time(data[name], f"{path}.{name}")
    for name in ("start_date", "end_date"):
        if data.get(name) is not None:
            kw[name] = _date(data[name], f"{path}.{name}")
    for name, places in (
        ("min_kwh", 3),
        ("max_kwh", 3),
        ("min_current", 2),
        ("max_current", 2),
        ("min_power", 2),
        ("max_power", 2),
    ):
        if data.get(name) is not None:
            kw[name] = to_decimal(data[name], f"{path}.{name}", places=places, below=10**7)
    for name in ("min_duration", "max_duration"):
        if data.get(name) is not None:
            kw[name] = _int(data[name], f"{path}.{name}")
            if kw[name] > 2**31 - 1:
                raise OcpiError(f"{path}.{name}", "too large")
    days = data.get("day_of_week")
    if days is not None:
        if not isinstance(days, list) or any(d not in DAYS for d in days):
            raise OcpiError(f"{path}.day_of_week", f"must be a list of {', '.join(DAYS)}")
        kw["day_of_week"] = frozenset(days)
    if data.get("reservation") is not None:
        if data["reservation"] not in ("RESERVATION", "RESERVATION_EXPIRES"):
            raise OcpiError(f"{path}.reservation", "must be RESERVATION or RESERVATION_EXPIRES")
        kw["reservation"] = data["reservation"]
    pairs = (
        ("min_kwh", "max_kwh"),
        ("min_current", "max_current"),
        ("min_power", "max_power"),
        ("min_duration", "max_duration"),
    )
    for low, high in pairs:
        if low in kw and high in kw and kw[low] >= kw[high]:
            raise OcpiError(f"{path}.{high}", f"must be above {low}")
    if "start_date" in kw and "end_date" in kw and kw["start_date"] >= kw["end_date"]:
        raise OcpiError(f"{path}.end_date", "must be after start_date")
    return Restrictions(**kw)


def component_from_ocpi(data: Any, path: str) -> PriceComponent:
    if not isinstance(data, Mapping):
        raise OcpiError(path, "must be an object")
    kind = data.get("type")
    if kind not in COMPONENT_TYPES:
        raise OcpiError(f"{path}.type", f"must be one of {', '.join(COMPONENT_TYPES)}")
    if "price" not in data:
        raise OcpiError(f"{path}.price", "is required")
    price = to_decimal(data["price"], f"{path}.price")
    vat = None
    if data.get("vat") is not None:
        vat = to_decimal(data["vat"], f"{path}.vat", places=2, below=101)
    step = _int(data.get("step_size", 1), f"{path}.step_size", minimum=1)
    if step > 2**31 - 1:
        raise OcpiError(f"{path}.step_size", "too large")
    return PriceComponent(type=kind, price=price, vat=vat, step_size=step)


def _price_excl(value: Any, path: str) -> Decimal | None:
    """OCPI Price object ``{"excl_vat": …, "incl_vat": …}``; we price with ``excl_vat``."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or "excl_vat" not in value:
        raise OcpiError(path, 'must be {"excl_vat": number, "incl_vat": number}')
    return to_decimal(value["excl_vat"], f"{path}.excl_vat")


def tariff_from_ocpi(data: Mapping[str, Any]) -> Tariff:
    """Validate OCPI 2.2.1 tariff JSON and return the engine's tariff (raises :class:`OcpiError`)."""
    if not isinstance(data, Mapping):
        raise OcpiError("tariff", "must be an object")
    currency = data.get("currency")
    if currency not in MINOR_UNITS:
        raise OcpiError("currency", "unsupported ISO 4217 currency")
    elements_data = data.get("elements")
    if not isinstance(elements_data, list) or not elements_data:
        raise OcpiError("elements", "must be a non-empty list")
    elements = []
    for i, element in enumerate(elements_data):
        path = f"elements[{i}]"
        if not isinstance(element, Mapping):
            raise OcpiError(path, "must be an object")
        components_data = element.get("price_components")
        if not isinstance(components_data, list) or not components_data:
            raise OcpiError(f"{path}.price_components", "must be a non-empty list")
        components = tuple(
            component_from_ocpi(c, f"{path}.price_components[{j}]") for j, c in enumerate(components_data)
        )
        if len({c.type for c in components}) != len(components):
            raise OcpiError(f"{path}.price_components", "at most one component per type")
        restrictions = restrictions_from_ocpi(element.get("restrictions"), f"{path}.restrictions")
        elements.append(TariffElement(price_components=components, restrictions=restrictions))
    min_price = _price_excl(data.get("min_price"), "min_price")
    max_price = _price_excl(data.get("max_price"), "max_price")
    if min_price is not None and max_price is not None and min_price > max_price:
        raise OcpiError("max_price", "must not be below min_price")
    return Tariff(currency=currency, elements=tuple(elements), min_price=min_price, max_price=max_price)


# --- model → OCPI JSON -------------------------------------------------------------------

COMPONENT_COLUMNS = (
    ("ENERGY", "energy"),
    ("FLAT", "flat"),
    ("PARKING_TIME", "parking_time"),
    ("TIME", "time"),
)


def _hhmm(value: time | None) -> str | None:
    return value.strftime("%H:%M") if value is not None else None


def element_to_ocpi(element: Any) -> dict[str, Any]:
    """A ``billing.models.TariffElement`` as an OCPI TariffElement (numbers as Decimal)."""
    components = []
    for kind, column in COMPONENT_COLUMNS:
        price = getattr(element, f"{column}_price")
        if price is None:
            continue
        component: dict[str, Any] = {
            "type": kind,
            "price": price,
            "step_size": getattr(element, f"{column}_step_size"),
        }
        vat = getattr(element, f"{column}_vat")
        if vat is not None:
            component["vat"] = vat
        components.append(component)
    restrictions: dict[str, Any] = {
        "start_time": _hhmm(element.start_time),
        "end_time": _hhmm(element.end_time),
        "start_date": element.start_date.isoformat() if element.start_date else None,
        "end_date": element.end_date.isoformat() if element.end_date else None,
        "min_kwh": element.min_kwh,
        "max_kwh": element.max_kwh,
        "min_current": element.min_current,
        "max_current": element.max_current,
        "min_power": element.min_power,
        "max_power": element.max_power,
        "min_duration": element.min_duration,
        "max_duration": element.max_duration,
        "day_of_week": list(element.day_of_week) or None,
        "reservation": element.reservation or None,
    }
    restrictions = {k: v for k, v in restrictions.items() if v is not None}
    data: dict[str, Any] = {"price_components": components}
    if restrictions:
        data["restrictions"] = restrictions
    return data


def tariff_to_ocpi(tariff: Any, elements: list[Any]) -> dict[str, Any]:
    """A ``billing.models.Tariff`` (and its elements in order) as OCPI 2.2.1 tariff JSON."""
    data: dict[str, Any] = {
        "country_code": tariff.country_code,
        "party_id": tariff.party_id,
        "id": tariff.ocpi_id,
        "currency": tariff.currency,
        "elements": [element_to_ocpi(e) for e in elements],
        "last_updated": tariff.updated_at.isoformat().replace("+00:00", "Z") if tariff.updated_at else None,
    }
    if tariff.type:
        data["type"] = tariff.type
    if tariff.alt_text:
        data["tariff_alt_text"] = tariff.alt_text
    if tariff.alt_url:
        data["tariff_alt_url"] = tariff.alt_url
    for name in ("min_price", "max_price"):
        excl = getattr(tariff, f"{name}_excl_vat")
        if excl is not None:
            incl = getattr(tariff, f"{name}_incl_vat")
            data[name] = {"excl_vat": excl, "incl_vat": incl if incl is not None else excl}
    for name in ("start_date_time", "end_date_time"):
        value = getattr(tariff, name)
        if value is not None:
            data[name] = value.isoformat().replace("+00:00", "Z")
    return data


def element_columns(element: TariffElement) -> dict[str, Any]:
    """Model column values for an engine ``TariffElement`` (validated by :func:`tariff_from_ocpi`)."""
    columns: dict[str, Any] = {}
    for kind, column in COMPONENT_COLUMNS:
        component = element.component(kind)
        columns[f"{column}_price"] = component.price if component else None
        columns[f"{column}_vat"] = component.vat if component else None
        columns[f"{column}_step_size"] = component.step_size if component else 1
    r = element.restrictions
    columns.update(
        start_time=r.start_time,
        end_time=r.end_time,
        start_date=r.start_date,
        end_date=r.end_date,
        min_kwh=r.min_kwh,
        max_kwh=r.max_kwh,
        min_current=r.min_current,
        max_current=r.max_current,
        min_power=r.min_power,
        max_power=r.max_power,
        min_duration=r.min_duration,
        max_duration=r.max_duration,
        day_of_week=[d for d in DAYS if d in r.day_of_week],
        reservation=r.reservation or "",
    )
    return columns
