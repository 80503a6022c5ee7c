"""Billing vocabularies, and the invoice state machine (its transitions live here, only here)."""

from django.db import models


class ComponentType(models.TextChoices):
    """OCPI 2.2.1 TariffDimensionType of a price component."""

    ENERGY = "ENERGY", "Energy (per kWh)"
    TIME = "TIME", "Time charging (per hour)"
    PARKING_TIME = "PARKING_TIME", "Parking time (per hour, not charging)"
    FLAT = "FLAT", "Flat (per session)"


class AssignmentScope(models.TextChoices):
    """Where a tariff applies, most specific first (see ``billing.selectors.tariff_for_session``)."""

    ORGANIZATION = "organization", "Organization contract"
    CONNECTOR = "connector", "Connector"
    CHARGE_POINT = "charge_point", "Charger"
    SITE = "site", "Site"
    DEFAULT = "default", "Default"


SCOPE_PRECEDENCE: tuple[str, ...] = (
    AssignmentScope.ORGANIZATION,
    AssignmentScope.CONNECTOR,
    AssignmentScope.CHARGE_POINT,
    AssignmentScope.SITE,
    AssignmentScope.DEFAULT,
)


class BillingPeriod(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    WEEKLY = "weekly", "Weekly (from Monday)"
    DAILY = "daily", "Daily"


class InvoiceStatus(models.TextChoices):
    """draft → open → paid / void / uncollectible; see ``INVOICE_TRANSITIONS``."""

    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"


INVOICE_TRANSITIONS: dict[str, frozenset[str]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.OPEN}),
    InvoiceStatus.OPEN: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.VOID: frozenset(),
}

# States in which money may still be received.
PAYABLE_STATES = frozenset({InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE})


def invoice_can_move(current: str, target: str) -> bool:
    return target in INVOICE_TRANSITIONS.get(current, frozenset())


class NumberSeries(models.TextChoices):
    """Gapless document number series: ``<series>-<year>-<6 digits>``."""

    INVOICE = "INV", "Invoice"
    CREDIT_NOTE = "CN", "Credit note"


class PaymentMethod(models.TextChoices):
    BANK_TRANSFER = "bank_transfer", "Bank transfer"
    CARD = "card", "Card"
    DIRECT_DEBIT = "direct_debit", "Direct debit"
    CASH = "cash", "Cash"
    OTHER = "other", "Other"
