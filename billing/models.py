"""Tariffs, tariff assignments, CDRs, credit notes, billing accounts, invoices and payments.

The database enforces what must never happen (see each ``Meta``): one CDR per session, one
invoice per account and period, a CDR on at most one invoice, one number per series and year,
money rows protected from deletion. Writes go through ``billing.services``.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round

from billing.choices import (
    AssignmentScope,
    BillingPeriod,
    InvoiceStatus,
    NumberSeries,
    PaymentMethod,
)
from evcharge.core.models import TimeStampedModel
from evcharge.core.money import CURRENCY_CHOICES, Money
from evcharge.core.validators import validate_time_zone

# Prices per unit carry more decimals than charged amounts (STYLE: Money).
PRICE = {"max_digits": 14, "decimal_places": 6}
# Charged amounts: 3 decimals is the largest minor unit we bill in (KWD).
AMOUNT = {"max_digits": 16, "decimal_places": 3}


def exact_sum(expression):
    """A sum of amounts for a check constraint, rounded to the amounts' 3 places.

    PostgreSQL adds numerics exactly. SQLite (the quick start) stores them as floats and adds
    floats: 0.10 + 0.02 is 0.12000000000000001 there, and ``incl = excl + vat`` fails for about
    one row in five. Rounding the sum gives back the float the written amount is stored as.
    """
    return Round(expression, AMOUNT["decimal_places"])


class JsonTextField(models.JSONField):
    """JSON kept as the text it was written: PostgreSQL ``text``, not ``jsonb`` (nor ``json``).

    For documents that are written once, by our own code, read whole and never queried inside
    (a CDR's priced periods and VAT lines). ``jsonb`` parses the text into a binary tree on every
    write and ``json`` parses it to check it; both cost more than the rest of the row: per CDR
    written by ``COPY``, PostgreSQL's CPU was about 22 µs with ``jsonb`` VAT lines and ``json``
    periods, about 15 with both as text (the backend's own CPU time, 40,000 CDRs, three runs).
    The writers are ``orjson`` and the native core, which a property test holds to ``orjson``
    byte for byte, so the text is JSON; a reader that needs it parsed in SQL casts (``::json``).
    The keys come back in the order they were written. SQLite stores text either way.
    """

    def db_type(self, connection):
        return "text" if connection.vendor == "postgresql" else super().db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "postgresql":
            return super().get_db_prep_value(value, connection, prepared)
        if value is None:
            return None
        if not prepared:
            value = self.get_prep_value(value)
        return json.dumps(value, cls=self.encoder)  # text, as the column is


class Tariff(TimeStampedModel):
    """An OCPI 2.2.1 tariff. ``ocpi_id`` is the OCPI ``id`` (the API's key)."""

    ocpi_id = models.CharField("OCPI id", max_length=36, unique=True)
    country_code = models.CharField(max_length=2, default="DE")
    party_id = models.CharField(max_length=3, default="EVC")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    type = models.CharField(max_length=24, blank=True, help_text="OCPI TariffType (optional)")
    alt_text = models.JSONField(
        default=list, blank=True, help_text='OCPI tariff_alt_text: [{"language", "text"}]'
    )
    alt_url = models.URLField(blank=True)
    min_price_excl_vat = models.DecimalField(
        **PRICE, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    min_price_incl_vat = models.DecimalField(
        **PRICE, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    max_price_excl_vat = models.DecimalField(
        **PRICE, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    max_price_incl_vat = models.DecimalField(
        **PRICE, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    start_date_time = models.DateTimeField(null=True, blank=True)
    end_date_time = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ocpi_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(min_price_excl_vat__isnull=True)
                | Q(max_price_excl_vat__isnull=True)
                | Q(min_price_excl_vat__lte=F("max_price_excl_vat")),
                name="tariff_min_not_above_max",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ocpi_id} ({self.currency})"


class TariffElement(models.Model):
    """One OCPI TariffElement: restrictions, and at most one price component per type.

    OCPI lists components; the first element with a component of a dimension prices it, so a
    second component of the same type in one element could never apply. The four types are
    therefore column groups here (``<type>_price``, ``_vat``, ``_step_size``); a type whose
    price is empty is absent.
    """

    tariff = models.ForeignKey(Tariff, on_delete=models.CASCADE, related_name="elements")
    position = models.PositiveSmallIntegerField(help_text="order in the tariff; the first match wins")

    energy_price = models.DecimalField(**PRICE, null=True, blank=True, help_text="per kWh, excl. VAT")
    energy_vat = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True, help_text="%")
    energy_step_size = models.PositiveIntegerField(default=1, help_text="Wh")
    time_price = models.DecimalField(**PRICE, null=True, blank=True, help_text="per hour charging")
    time_vat = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    time_step_size = models.PositiveIntegerField(default=1, help_text="seconds")
    parking_time_price = models.DecimalField(
        **PRICE, null=True, blank=True, help_text="per hour not charging"
    )
    parking_time_vat = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    parking_time_step_size = models.PositiveIntegerField(default=1, help_text="seconds")
    flat_price = models.DecimalField(**PRICE, null=True, blank=True, help_text="per session")
    flat_vat = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    flat_step_size = models.PositiveIntegerField(default=1)

    start_time = models.TimeField(null=True, blank=True, help_text="local, inclusive")
    end_time = models.TimeField(
        null=True, blank=True, help_text="local, exclusive; before start wraps midnight"
    )
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    min_kwh = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    max_kwh = models.DecimalField(max_digits=12, decimal_places=3, null=True, blank=True)
    min_current = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    max_current = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    min_power = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True, help_text="kW")
    max_power = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True, help_text="kW")
    min_duration = models.PositiveIntegerField(null=True, blank=True, help_text="seconds")
    max_duration = models.PositiveIntegerField(null=True, blank=True, help_text="seconds")
    day_of_week = models.JSONField(default=list, blank=True, help_text='e.g. ["SATURDAY", "SUNDAY"]')
    reservation = models.CharField(max_length=24, blank=True)

    class Meta:
        ordering = ["tariff", "position"]
        constraints = [
            models.UniqueConstraint(fields=["tariff", "position"], name="tariff_element_position_unique"),
            models.CheckConstraint(
                condition=Q(energy_price__isnull=False)
                | Q(time_price__isnull=False)
                | Q(parking_time_price__isnull=False)
                | Q(flat_price__isnull=False),
                name="tariff_element_has_a_component",
            ),
            models.CheckConstraint(
                condition=Q(energy_price__gte=0) | Q(energy_price__isnull=True),
                name="energy_price_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(time_price__gte=0) | Q(time_price__isnull=True), name="time_price_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(parking_time_price__gte=0) | Q(parking_time_price__isnull=True),
                name="parking_time_price_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(flat_price__gte=0) | Q(flat_price__isnull=True), name="flat_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tariff.ocpi_id} element {self.position}"


class TariffAssignment(TimeStampedModel):
    """Which tariff applies where. Exactly one target per scope; one assignment per target.

    Resolution, most specific first: organization contract, connector, charger, site, default.
    """

    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="assignments")
    scope = models.CharField(max_length=16, choices=AssignmentScope.choices)
    organization = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    connector = models.ForeignKey(
        "chargers.Connector", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    charge_point = models.ForeignKey(
        "chargers.ChargePoint", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    site = models.ForeignKey(
        "chargers.Site", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        ordering = ["scope", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(
                        scope=AssignmentScope.ORGANIZATION,
                        organization__isnull=False,
                        connector__isnull=True,
                        charge_point__isnull=True,
                        site__isnull=True,
                    )
                    | Q(
                        scope=AssignmentScope.CONNECTOR,
                        organization__isnull=True,
                        connector__isnull=False,
                        charge_point__isnull=True,
                        site__isnull=True,
                    )
                    | Q(
                        scope=AssignmentScope.CHARGE_POINT,
                        organization__isnull=True,
                        connector__isnull=True,
                        charge_point__isnull=False,
                        site__isnull=True,
                    )
                    | Q(
                        scope=AssignmentScope.SITE,
                        organization__isnull=True,
                        connector__isnull=True,
                        charge_point__isnull=True,
                        site__isnull=False,
                    )
                    | Q(
                        scope=AssignmentScope.DEFAULT,
                        organization__isnull=True,
                        connector__isnull=True,
                        charge_point__isnull=True,
                        site__isnull=True,
                    )
                ),
                name="tariff_assignment_target_matches_scope",
            ),
            models.UniqueConstraint(
                fields=["organization"], condition=Q(scope="organization"), name="one_tariff_per_organization"
            ),
            models.UniqueConstraint(
                fields=["connector"], condition=Q(scope="connector"), name="one_tariff_per_connector"
            ),
            models.UniqueConstraint(
                fields=["charge_point"], condition=Q(scope="charge_point"), name="one_tariff_per_charge_point"
            ),
            models.UniqueConstraint(fields=["site"], condition=Q(scope="site"), name="one_tariff_per_site"),
            models.UniqueConstraint(
                fields=["scope"], condition=Q(scope="default"), name="one_default_tariff"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tariff.ocpi_id} → {self.get_scope_display()} {self.target_id or ''}".strip()

    @property
    def target_id(self) -> int | None:
        return self.organization_id or self.connector_id or self.charge_point_id or self.site_id


class BillingAccount(TimeStampedModel):
    """Who receives invoices: an organization or a single driver (exactly one of them)."""

    name = models.CharField(max_length=200)
    organization = models.OneToOneField(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="billing_account",
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="billing_account",
    )
    period = models.CharField(max_length=8, choices=BillingPeriod.choices, default=BillingPeriod.MONTHLY)
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="IANA name; periods close at local midnight",
    )
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, default="EUR")
    billing_email = models.EmailField(blank=True)
    address = models.TextField(blank=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(organization__isnull=False, user__isnull=True)
                | Q(organization__isnull=True, user__isnull=False),
                name="billing_account_is_organization_or_user",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TariffSnapshot(models.Model):
    """The OCPI JSON of a tariff exactly as it priced CDRs: one row per distinct version.

    Content-addressed (``digest`` is the SHA-256 of the canonical JSON), so thousands of CDRs
    priced by the same tariff version share one row, and editing a tariff later makes a new
    row instead of changing what earlier CDRs were priced with. Never updated or deleted while
    a CDR points at it.
    """

    digest = models.CharField(max_length=64, unique=True)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "tariff snapshot"

    def __str__(self) -> str:
        return f"{self.data.get('id', '?')} @ {self.digest[:12]}"


class Cdr(models.Model):
    """Charge detail record: one priced, finished session. Immutable (a trigger refuses UPDATE).

    ``snapshot`` holds the OCPI JSON of the tariff as priced (shared by every CDR of that
    tariff version); ``pricing`` the engine's result (periods, step extras, VAT by rate).
    Corrections are ``CreditNote`` rows.
    """

    # The four references below are checked by the database per statement, not per row
    # (``db_constraint=False``; migrations 0010, 0020): a trigger verifies the rows a batch of new
    # CDRs names, and the parents refuse deletion while a CDR names them (a delete first takes
    # the CDR table in SHARE mode, so it waits for CDR writers and they for it).
    session = models.OneToOneField(
        "chargers.ChargingSession", on_delete=models.PROTECT, related_name="cdr", db_constraint=False
    )
    # No index of its own: the (account, stopped_at) index serves every lookup by account.
    account = models.ForeignKey(
        BillingAccount,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="cdrs",
        db_index=False,
        db_constraint=False,
    )
    # PROTECT: a tariff that priced CDRs stays (and a CDR row is never updated to forget it).
    tariff = models.ForeignKey(
        Tariff, null=True, on_delete=models.PROTECT, related_name="cdrs", db_constraint=False
    )
    # Never looked up from the snapshot side (snapshots are not deleted): no index.
    snapshot = models.ForeignKey(
        TariffSnapshot, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    pricing = JsonTextField()  # written once, read whole: text
    charge_point_identity = models.CharField(max_length=48)
    connector_id = models.PositiveSmallIntegerField()
    site_time_zone = models.CharField(max_length=64)
    id_tag = models.CharField(max_length=20)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField(db_index=True)
    energy_wh = models.BigIntegerField(help_text="meter stop - meter start")
    total_energy_kwh = models.DecimalField(max_digits=14, decimal_places=6)
    total_time_hours = models.DecimalField(max_digits=14, decimal_places=6)
    total_parking_time_hours = models.DecimalField(max_digits=14, decimal_places=6)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    total_excl_vat = models.DecimalField(**AMOUNT)
    total_vat = models.DecimalField(**AMOUNT)
    total_incl_vat = models.DecimalField(**AMOUNT)
    vat_breakdown = JsonTextField(default=list, help_text='[{"rate", "base", "amount"}] as in pricing["vat"]')
    # The CDR's one VAT rate ("19"), when its breakdown has exactly one line: then that line is
    # (total_excl_vat, total_vat), and invoices sum these columns instead of parsing the JSON.
    vat_rate = models.CharField(max_length=12, null=True, blank=True)  # noqa: DJ001 - NULL: not one rate
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-stopped_at", "-id"]
        verbose_name = "CDR"
        indexes = [models.Index(fields=["account", "stopped_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(total_incl_vat=exact_sum(F("total_excl_vat") + F("total_vat"))),
                name="cdr_incl_is_excl_plus_vat",
            ),
            models.CheckConstraint(condition=Q(total_excl_vat__gte=0), name="cdr_total_not_negative"),
        ]

    def __str__(self) -> str:
        return f"CDR {self.pk} (session {self.session_id}) {self.total_incl_vat} {self.currency}"

    @property
    def total_incl(self) -> Money:
        return Money(self.total_incl_vat, self.currency)

    @property
    def tariff_snapshot(self) -> dict:
        """The OCPI JSON of the tariff this CDR was priced with."""
        return self.snapshot.data


def document_pdf_path(document, filename: str) -> str:
    """``invoices/2026/INV-2026-000123.pdf``, ``credit-notes/2026/CN-2026-000007.pdf``: the folder
    is the year of the document's number, whenever its PDF is rendered (again)."""
    folder = "invoices" if isinstance(document, Invoice) else "credit-notes"
    year = document.number.split("-")[1]
    return f"{folder}/{year}/{filename}"


class Invoice(TimeStampedModel):
    """One per account and period. Totals are the sums of its lines (the CDR totals).

    ``number`` is empty while draft and given, gapless, when issued (``billing.numbering``).
    """

    account = models.ForeignKey(BillingAccount, on_delete=models.PROTECT, related_name="invoices")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    number = models.CharField(max_length=20, null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    total_excl_vat = models.DecimalField(**AMOUNT, default=Decimal(0))
    total_vat = models.DecimalField(**AMOUNT, default=Decimal(0))
    total_incl_vat = models.DecimalField(**AMOUNT, default=Decimal(0))
    amount_paid = models.DecimalField(**AMOUNT, default=Decimal(0))
    # Incl. VAT, the sum of the credit notes of this invoice's CDRs (docs/billing.md §6).
    amount_credited = models.DecimalField(**AMOUNT, default=Decimal(0))
    # Money paid back of what was owed back (the sum of its refunds).
    amount_refunded = models.DecimalField(**AMOUNT, default=Decimal(0))
    vat_breakdown = models.JSONField(default=list, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    pdf = models.FileField(upload_to=document_pdf_path, blank=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "period_start"], name="one_invoice_per_account_period"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gt=F("period_start")), name="invoice_period_not_empty"
            ),
            models.CheckConstraint(
                condition=Q(status="draft", number__isnull=True)
                | (~Q(status="draft") & Q(number__isnull=False)),
                name="invoice_numbered_once_issued",
            ),
            models.CheckConstraint(
                condition=Q(total_incl_vat=exact_sum(F("total_excl_vat") + F("total_vat"))),
                name="invoice_incl_is_excl_plus_vat",
            ),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0) & Q(amount_paid__lte=F("total_incl_vat")),
                name="invoice_paid_within_total",
            ),
            models.CheckConstraint(
                condition=Q(amount_credited__gte=0) & Q(amount_credited__lte=F("total_incl_vat")),
                name="invoice_credited_within_total",
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded=0)
                | Q(
                    amount_refunded__gt=0,
                    amount_refunded__lte=exact_sum(
                        F("amount_paid") + F("amount_credited") - F("total_incl_vat")
                    ),
                ),
                name="invoice_refunded_within_refundable",
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"draft invoice {self.pk}"

    @property
    def amount_due(self) -> Decimal:
        """What the customer still owes: the total less payments and credit notes (never < 0)."""
        return max(self.total_incl_vat - self.amount_paid - self.amount_credited, Decimal(0))

    @property
    def amount_refundable(self) -> Decimal:
        """What is still owed back: credit notes on what was already paid, less refunds."""
        return max(
            self.amount_paid + self.amount_credited - self.total_incl_vat - self.amount_refunded, Decimal(0)
        )


class InvoiceLine(models.Model):
    """A CDR on an invoice. ``cdr`` is unique: a CDR is on at most one invoice, ever."""

    # No foreign-key constraint either: PostgreSQL checked it at commit with a row lock on the
    # invoice per line (a quarter of a million-CDR billing run). Invoices are never deleted — an
    # issued number must stay, gapless — and the table refuses DELETE (migration 0009); lines are
    # only made by the billing cycle's INSERT … SELECT joined to invoices of its own transaction.
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines", db_constraint=False)
    # Unique: a CDR is on one invoice at most. No foreign-key constraint: PostgreSQL checks one
    # with a row lock per line on the CDR (a million CDR pages rewritten per billing run); what
    # it guarded — a billed CDR disappearing — is refused by the CDR table itself (migration
    # 0007: CDRs cannot be deleted), and lines are only ever made from existing CDRs.
    # The primary key too: a line is its CDR's place on an invoice (no surrogate id: one index
    # fewer to write per line, a fifth of the billing cycle's insert).
    cdr = models.OneToOneField(
        Cdr, on_delete=models.PROTECT, related_name="invoice_line", db_constraint=False, primary_key=True
    )
    total_excl_vat = models.DecimalField(**AMOUNT)
    total_vat = models.DecimalField(**AMOUNT)
    total_incl_vat = models.DecimalField(**AMOUNT)
    # The CDR's one VAT rate (``Cdr.vat_rate``): the invoice's VAT sums these lines; a line
    # without (several rates, or made before 0008) is summed from its CDR's JSON breakdown.
    vat_rate = models.CharField(max_length=12, null=True, blank=True)  # noqa: DJ001 - NULL: see the CDR

    class Meta:
        ordering = ["invoice_id", "cdr_id"]  # columns, not relations: no join to order by

    def __str__(self) -> str:
        return f"{self.invoice} · CDR {self.cdr_id}"


class UnbilledCdr(models.Model):
    """A CDR waiting for its invoice: the billing cycle's work queue.

    Kept by the database, never by code: a trigger adds every CDR that has an account when it
    is inserted, and a trigger on invoice lines removes it when a line bills it (and puts it
    back if a line is ever deleted) — migration 0008. So the cycle looks at what is unbilled,
    not at every CDR ever written, and its cost stays flat as history grows. The lines'
    unique CDR key remains what makes a CDR billed at most once.
    """

    cdr = models.OneToOneField(
        Cdr, primary_key=True, on_delete=models.DO_NOTHING, related_name="unbilled", db_constraint=False
    )
    account = models.ForeignKey(
        BillingAccount, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False
    )
    currency = models.CharField(max_length=3)
    stopped_at = models.DateTimeField()
    # The CDR's totals and one VAT rate, copied: an invoice's lines and VAT are made from the
    # queue and the lines alone, without reading CDR rows (a kilobyte each, scattered over a
    # table far larger than memory).
    total_excl_vat = models.DecimalField(**AMOUNT)
    total_vat = models.DecimalField(**AMOUNT)
    total_incl_vat = models.DecimalField(**AMOUNT)
    vat_rate = models.CharField(max_length=12, null=True, blank=True)  # noqa: DJ001 - as Cdr.vat_rate

    class Meta:
        verbose_name = "unbilled CDR"
        indexes = [models.Index(fields=["account", "stopped_at"], name="billing_unbilled_account")]

    def __str__(self) -> str:
        return f"unbilled CDR {self.cdr_id}"


class NumberCounter(models.Model):
    """The last number taken per series and year. Locked (``FOR UPDATE``) by the issuing transaction."""

    series = models.CharField(max_length=8, choices=NumberSeries.choices)
    year = models.PositiveSmallIntegerField()
    last_number = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "year"], name="one_counter_per_series_year")]

    def __str__(self) -> str:
        return f"{self.series}-{self.year}: {self.last_number}"


class MoneyMovement(TimeStampedModel):
    """Money moved for an invoice, in its currency. ``reference`` (the bank's or the payment
    provider's) is unique per invoice: the idempotency key of a recording."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="%(class)ss")
    amount = models.DecimalField(**AMOUNT, validators=[MinValueValidator(Decimal("0.001"))])
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    method = models.CharField(
        max_length=16, choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER
    )
    reference = models.CharField(max_length=100, help_text="bank or provider reference; idempotency key")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "reference"], name="%(class)s_reference_once_per_invoice"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="%(class)s_amount_positive"),
        ]


class Payment(MoneyMovement):
    """Money received against an invoice (full or partial)."""

    received_at = models.DateTimeField()

    class Meta(MoneyMovement.Meta):
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} on {self.invoice}"


class Refund(MoneyMovement):
    """Money paid back against an invoice's ``amount_refundable``."""

    refunded_at = models.DateTimeField()

    class Meta(MoneyMovement.Meta):
        ordering = ["-refunded_at", "-id"]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} back on {self.invoice}"


class CreditNote(TimeStampedModel):
    """A correction of a CDR: the amount given back (positive numbers), numbered ``CN-YYYY-NNNNNN``."""

    number = models.CharField(max_length=20, unique=True)
    cdr = models.ForeignKey(Cdr, on_delete=models.PROTECT, related_name="credit_notes")
    invoice = models.ForeignKey(
        Invoice,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="credit_notes",
        help_text="the invoice the CDR was on, if any",
    )
    reason = models.CharField(max_length=255)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    total_excl_vat = models.DecimalField(**AMOUNT)
    total_vat = models.DecimalField(**AMOUNT)
    total_incl_vat = models.DecimalField(**AMOUNT)
    vat_breakdown = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pdf = models.FileField(upload_to=document_pdf_path, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(total_excl_vat__gt=0), name="credit_note_amount_positive"),
            models.CheckConstraint(
                condition=Q(total_incl_vat=exact_sum(F("total_excl_vat") + F("total_vat"))),
                name="credit_note_incl_is_excl_plus_vat",
            ),
        ]
        # The billing cycle reads the notes waiting for their CDR's invoice every batch: only
        # those, however many notes were ever written.
        indexes = [
            models.Index(fields=["cdr"], condition=Q(invoice__isnull=True), name="credit_note_waiting"),
        ]

    def __str__(self) -> str:
        return self.number
