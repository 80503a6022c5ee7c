"""Billing writes: tariffs, assignments, CDRs, billing cycles, invoices, payments, credit notes.

Every function is keyword-only and atomic. Row locks are named in the docstrings and always
taken in the same order: billing account → invoice → number counter (→ CDR for credit notes).
The rules themselves are in ``docs/billing.md``; pricing is ``billing.pricing``.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.core.files.base import ContentFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from billing import selectors
from billing.choices import (
    PAYABLE_STATES,
    AssignmentScope,
    InvoiceStatus,
    NumberSeries,
    PaymentMethod,
    invoice_can_move,
)
from billing.exceptions import InvalidTariff, InvalidTransition, PaymentRefused
from billing.models import (
    BillingAccount,
    Cdr,
    CreditNote,
    Invoice,
    InvoiceLine,
    NumberCounter,
    Payment,
    Tariff,
    TariffAssignment,
    TariffElement,
)
from billing.ocpi import OcpiError, element_columns, tariff_from_ocpi, tariff_to_ocpi, to_decimal
from billing.periods import last_closed_period
from billing.pricing import PricedSession, PricingError, Reading, price_session
from evcharge.core.errors import Conflict
from evcharge.core.money import round_half_up

logger = logging.getLogger(__name__)


def _json_safe(data: Any) -> Any:
    """Decimals as strings, datetimes as ISO: what a JSONField stores."""
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


# --- tariffs -----------------------------------------------------------------------------


def tariff_ocpi(*, tariff: Tariff) -> dict[str, Any]:
    """The OCPI 2.2.1 JSON of ``tariff`` (uses prefetched ``elements`` when present)."""
    return tariff_to_ocpi(tariff, list(tariff.elements.all()))


@transaction.atomic
def tariff_save_ocpi(*, data: dict[str, Any], tariff: Tariff | None = None) -> Tariff:
    """Create a tariff from OCPI JSON, or replace ``tariff`` (its elements too) with it.

    Existing CDRs keep their snapshot; issued invoices are untouched (SPEC §9).
    """
    try:
        parsed = tariff_from_ocpi(data)
        min_incl = _incl(data.get("min_price"), "min_price")
        max_incl = _incl(data.get("max_price"), "max_price")
    except OcpiError as error:
        raise InvalidTariff(details=error.details) from None
    if tariff is None and not data.get("id"):
        raise InvalidTariff(details={"id": ["is required"]})
    fields = {
        "country_code": data.get("country_code") or "DE",
        "party_id": data.get("party_id") or "EVC",
        "currency": parsed.currency,
        "type": data.get("type") or "",
        "alt_text": data.get("tariff_alt_text") or [],
        "alt_url": data.get("tariff_alt_url") or "",
        "min_price_excl_vat": parsed.min_price,
        "min_price_incl_vat": min_incl,
        "max_price_excl_vat": parsed.max_price,
        "max_price_incl_vat": max_incl,
        "start_date_time": data.get("start_date_time"),
        "end_date_time": data.get("end_date_time"),
    }
    if tariff is None:
        tariff = Tariff(ocpi_id=data["id"])
    for name, value in fields.items():
        setattr(tariff, name, value)
    tariff.save()
    tariff.elements.all().delete()
    TariffElement.objects.bulk_create(
        TariffElement(tariff=tariff, position=i, **element_columns(element))
        for i, element in enumerate(parsed.elements)
    )
    return tariff


def _incl(price: Any, path: str) -> Decimal | None:
    if not isinstance(price, dict) or price.get("incl_vat") is None:
        return None
    return to_decimal(price["incl_vat"], f"{path}.incl_vat")


@transaction.atomic
def tariff_assign(*, tariff: Tariff, scope: str, target: Any = None) -> TariffAssignment:
    """Make ``tariff`` the one for ``target`` (organization, connector, charger, site; none = default).

    Replaces the target's previous assignment. Sessions already priced keep their CDRs.
    """
    if scope not in AssignmentScope.values:
        raise InvalidTariff(f"unknown scope {scope!r}")
    if (scope == AssignmentScope.DEFAULT) != (target is None):
        raise InvalidTariff("the default assignment has no target; every other scope needs one")
    target_field = {
        AssignmentScope.ORGANIZATION: "organization",
        AssignmentScope.CONNECTOR: "connector",
        AssignmentScope.CHARGE_POINT: "charge_point",
        AssignmentScope.SITE: "site",
    }.get(scope)
    lookup = {"scope": scope}
    if target_field:
        lookup[target_field] = target
    assignment, _ = TariffAssignment.objects.select_for_update().update_or_create(
        **lookup, defaults={"tariff": tariff}
    )
    return assignment


# --- pricing sessions --------------------------------------------------------------------


def session_price(*, session, tariff_json: dict[str, Any], until: datetime | None = None) -> PricedSession:
    """Price ``session`` with an OCPI tariff (finished: to its stop; live: to ``until``)."""
    stopped_at = session.stopped_at or until or timezone.now()
    readings = selectors.session_readings(session=session, until=None if session.stopped_at else stopped_at)
    return price_session(
        tariff=tariff_from_ocpi(tariff_json),
        started_at=session.started_at,
        stopped_at=max(stopped_at, session.started_at),
        meter_start_wh=session.meter_start_wh,
        readings=readings,
        time_zone=selectors.session_time_zone(session=session),
    )


def session_cost_estimate(*, session) -> dict[str, Any] | None:
    """Energy so far and the running cost of a live session, priced like its CDR will be.

    ``None`` when no tariff applies. Money as ``{"amount": "1.23", "currency": "EUR"}``.
    """
    tariff = selectors.tariff_for_session(session=session)
    if tariff is None:
        return None
    now = timezone.now()
    priced = session_price(session=session, tariff_json=_json_safe(tariff_ocpi(tariff=tariff)), until=now)
    return {
        "tariff_id": tariff.ocpi_id,
        "at": now,
        "energy_kwh": str(priced.as_json()["total_energy_kwh"]),
        "total_excl_vat": priced.total_excl,
        "total_incl_vat": priced.total_incl,
    }


def billing_account_for_session(*, session, currency: str) -> BillingAccount | None:
    """The account a session is billed to: its token's organization, else its user (made on first use)."""
    token = session.id_token
    if token is None:
        return None
    if token.organization_id is not None:
        org = token.organization
        account, _ = BillingAccount.objects.get_or_create(
            organization=org, defaults={"name": org.name, "currency": currency}
        )
        return account
    if token.user_id is not None:
        user = token.user
        account, _ = BillingAccount.objects.get_or_create(
            user=user,
            defaults={"name": user.get_full_name(), "currency": currency, "billing_email": user.email},
        )
        return account
    return None


def _cdr_row(*, session, tariff: Tariff, snapshot: dict, priced: PricedSession, account) -> Cdr:
    pricing = priced.as_json()
    return Cdr(
        session=session,
        account=account,
        tariff=tariff,
        tariff_snapshot=snapshot,
        pricing=pricing,
        charge_point_identity=session.charge_point.identity,
        connector_id=session.connector.connector_id,
        site_time_zone=selectors.session_time_zone(session=session),
        id_tag=session.id_tag,
        started_at=session.started_at,
        stopped_at=priced.stopped_at,
        energy_wh=int((priced.energy_kwh * 1000).to_integral_value(ROUND_HALF_UP)),
        total_energy_kwh=Decimal(pricing["total_energy_kwh"]),
        total_time_hours=Decimal(pricing["total_time_hours"]),
        total_parking_time_hours=Decimal(pricing["total_parking_time_hours"]),
        currency=priced.currency,
        total_excl_vat=priced.total_excl.amount,
        total_vat=priced.total_vat.amount,
        total_incl_vat=priced.total_incl.amount,
        vat_breakdown=pricing["vat"],
    )


SESSION_RELATED = ("charge_point__site", "connector", "id_token__organization", "id_token__user")


def _owner_key(session) -> tuple[str, int] | None:
    token = session.id_token
    if token is None:
        return None
    if token.organization_id is not None:
        return ("organization", token.organization_id)
    if token.user_id is not None:
        return ("user", token.user_id)
    return None


def _billing_accounts_for(sessions) -> dict[tuple[str, int], BillingAccount]:
    """The existing billing accounts of these sessions' owners, in two queries."""
    org_ids = {k[1] for s in sessions if (k := _owner_key(s)) and k[0] == "organization"}
    user_ids = {k[1] for s in sessions if (k := _owner_key(s)) and k[0] == "user"}
    found: dict[tuple[str, int], BillingAccount] = {}
    for account in BillingAccount.objects.filter(organization_id__in=org_ids):
        found[("organization", account.organization_id)] = account
    for account in BillingAccount.objects.filter(user_id__in=user_ids):
        found[("user", account.user_id)] = account
    return found


def cdr_create_for_session(*, session_id: int) -> Cdr | None:
    """Price a completed session and store its CDR, once.

    Idempotent: the database holds one CDR per session, a second run returns the first CDR.
    Returns ``None`` (and logs) for a missing or unfinished session, or when no tariff applies.
    """
    from chargers.models import ChargingSession

    existing = Cdr.objects.filter(session_id=session_id).first()
    if existing is not None:
        return existing
    session = ChargingSession.objects.select_related(*SESSION_RELATED).filter(pk=session_id).first()
    if session is None:
        logger.info("cdr: session %s does not exist", session_id)
        return None
    if session.stopped_at is None:
        logger.info("cdr: session %s has not finished", session_id)
        return None
    tariff = selectors.tariff_for_session(session=session)
    if tariff is None:
        logger.warning("cdr: no tariff applies to session %s (no default tariff?)", session_id)
        return None
    snapshot = _json_safe(tariff_ocpi(tariff=tariff))
    try:
        priced = session_price(session=session, tariff_json=snapshot)
    except PricingError:
        logger.exception("cdr: session %s cannot be priced", session_id)
        return None
    try:
        with transaction.atomic():
            account = billing_account_for_session(session=session, currency=priced.currency)
            cdr = _cdr_row(session=session, tariff=tariff, snapshot=snapshot, priced=priced, account=account)
            cdr.save(force_insert=True)
            return cdr
    except IntegrityError:
        # Another worker stored it between our check and our insert: theirs is the CDR.
        existing = Cdr.objects.filter(session_id=session_id).first()
        if existing is None:
            raise
        return existing


def cdrs_create_for_sessions(*, session_ids: list[int]) -> int:
    """Price many finished sessions at once: set-based loads, one bulk insert. Returns CDRs written.

    Same rules and engine as :func:`cdr_create_for_session`; sessions that have a CDR, are not
    finished or have no tariff are skipped. Idempotent under concurrency: the insert skips a
    session another worker priced meanwhile (``ON CONFLICT DO NOTHING`` on the session key).
    """
    from chargers.models import ChargingSession, MeterValue

    sessions = list(
        ChargingSession.objects.filter(pk__in=session_ids, stopped_at__isnull=False)
        .exclude(Exists(Cdr.objects.filter(session_id=OuterRef("pk"))))
        .select_related(*SESSION_RELATED)
        .order_by("pk")
    )
    if not sessions:
        return 0
    readings: dict[int, list[Reading]] = defaultdict(list)
    rows = MeterValue.objects.filter(
        session_id__in=[s.pk for s in sessions],
        measurand=selectors.ENERGY_REGISTER,
        phase="",
        location__in=selectors.REGISTER_LOCATIONS,
    ).values_list("session_id", "timestamp", "value")
    for session_id, timestamp, value in rows:
        readings[session_id].append(Reading(timestamp, value))
    accounts = _billing_accounts_for(sessions)
    resolve = selectors.tariff_resolver()
    engines: dict[int, tuple[dict, Any]] = {}
    cdrs = []
    for session in sessions:
        tariff = resolve(session)
        if tariff is None:
            continue
        if tariff.pk not in engines:
            snapshot = _json_safe(tariff_ocpi(tariff=tariff))
            engines[tariff.pk] = (snapshot, tariff_from_ocpi(snapshot))
        snapshot, engine = engines[tariff.pk]
        session_readings = readings.get(session.pk, [])
        if session.meter_stop_wh is not None and session.meter_stop_wh >= 0:
            session_readings = [
                *session_readings,
                Reading(session.stopped_at, Decimal(session.meter_stop_wh)),
            ]
        try:
            priced = price_session(
                tariff=engine,
                started_at=session.started_at,
                stopped_at=max(session.stopped_at, session.started_at),
                meter_start_wh=session.meter_start_wh,
                readings=session_readings,
                time_zone=selectors.session_time_zone(session=session),
            )
        except PricingError:
            logger.exception("cdr: session %s cannot be priced", session.pk)
            continue
        key = _owner_key(session)
        account = accounts.get(key) if key is not None else None
        if key is not None and account is None:  # first CDR of this owner: make its account
            account = accounts[key] = billing_account_for_session(session=session, currency=priced.currency)
        cdrs.append(
            _cdr_row(session=session, tariff=tariff, snapshot=snapshot, priced=priced, account=account)
        )
    with transaction.atomic():
        created = Cdr.objects.bulk_create(cdrs, ignore_conflicts=True, batch_size=1000)
    return len(created)


def cdr_sweep(*, stopped_before: datetime, batch_size: int = 2000) -> int:
    """Price every finished session still without a CDR, in batches. Returns CDRs written.

    The OCPP side enqueues one pricing task per stop; this catches any message lost on the way.
    Sessions no tariff applies to stay without CDR (and are looked at again next time).
    """
    ids = list(selectors.sessions_without_cdr(stopped_before=stopped_before).values_list("pk", flat=True))
    return sum(
        cdrs_create_for_sessions(session_ids=ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)
    )


# --- numbering ---------------------------------------------------------------------------


def number_take(*, series: str, year: int) -> str:
    """The next gapless number of ``series`` in ``year``, e.g. ``INV-2026-000123``.

    Locks the ``(series, year)`` counter row until the caller's transaction ends, so a rollback
    gives the number back and numbers follow commit order. Call inside ``transaction.atomic``.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("number_take must run inside the issuing transaction")
    table = NumberCounter._meta.db_table
    with connection.cursor() as cursor:
        # One statement: creates the counter row or increments it, holding its row lock until
        # the transaction ends (PostgreSQL and SQLite both speak this upsert).
        cursor.execute(
            f"INSERT INTO {table} (series, year, last_number) VALUES (%s, %s, 1)"  # noqa: S608 - our table
            f" ON CONFLICT (series, year) DO UPDATE SET last_number = {table}.last_number + 1"
            " RETURNING last_number",
            [series, year],
        )
        (number,) = cursor.fetchone()
    return f"{series}-{year}-{number:06d}"


# --- invoices ----------------------------------------------------------------------------


def _transition(invoice: Invoice, target: str) -> None:
    if not invoice_can_move(invoice.status, target):
        raise InvalidTransition(
            f"an invoice cannot go from {invoice.status} to {target}",
            details={"status": invoice.status, "target": target},
        )
    invoice.status = target


def _vat_breakdown(*, invoice_id: int) -> list[dict[str, str]]:
    """VAT by rate of an invoice: the sums of its CDRs' own per-rate bases and (rounded) amounts."""
    if connection.vendor != "postgresql":  # the embedded SQLite quick start: the same sums in Python
        rates: dict[str, list[Decimal]] = {}
        for breakdown in Cdr.objects.filter(invoice_line__invoice_id=invoice_id).values_list(
            "vat_breakdown", flat=True
        ):
            for line in breakdown:
                entry = rates.setdefault(line["rate"], [Decimal(0), Decimal(0)])
                entry[0] += Decimal(line["base"])
                entry[1] += Decimal(line["amount"])
        return [
            {"rate": rate, "base": str(base), "amount": str(amount)}
            for rate, (base, amount) in sorted(rates.items(), key=lambda item: Decimal(item[0]))
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT e.value ->> 'rate',
                   sum((e.value ->> 'base')::numeric),
                   sum((e.value ->> 'amount')::numeric)
            FROM billing_invoiceline l
            JOIN billing_cdr c ON c.id = l.cdr_id
            CROSS JOIN LATERAL jsonb_array_elements(c.vat_breakdown) AS e
            WHERE l.invoice_id = %s
            GROUP BY 1
            ORDER BY (e.value ->> 'rate')::numeric
            """,
            [invoice_id],
        )
        return [
            {"rate": rate, "base": str(base), "amount": str(amount)}
            for rate, base, amount in cursor.fetchall()
        ]


@transaction.atomic
def invoice_issue(*, invoice: Invoice, now: datetime | None = None, render_pdf: bool = True) -> Invoice:
    """draft → open: give the invoice its gapless number. Locks the invoice, then the counter.

    The PDF is rendered by a task enqueued after commit (``render_pdf=False``: later, on demand).
    """
    return _issue(Invoice.objects.select_for_update().get(pk=invoice.pk), now=now, render_pdf=render_pdf)


def _issue(invoice: Invoice, *, now: datetime | None, render_pdf: bool) -> Invoice:
    """Issue an invoice whose row the caller's transaction already holds (locked or just made)."""
    _transition(invoice, InvoiceStatus.OPEN)
    invoice.issued_at = now or timezone.now()
    invoice.number = number_take(series=NumberSeries.INVOICE, year=invoice.issued_at.astimezone(UTC).year)
    invoice.save(update_fields=["status", "issued_at", "number", "updated_at"])
    if render_pdf:
        transaction.on_commit(lambda: _enqueue_pdf(invoice.pk))
    return invoice


def _enqueue_pdf(invoice_id: int) -> None:
    from billing.tasks import invoice_render_pdf

    try:
        invoice_render_pdf.delay(invoice_id=invoice_id)
    except Exception:  # the broker being down must not undo a committed invoice
        logger.exception("invoice %s: could not enqueue the PDF", invoice_id)


@dataclass(frozen=True)
class CycleResult:
    accounts_seen: int
    invoices_created: list[int]


def invoice_close_period(*, account_id: int, now: datetime, render_pdf: bool = True) -> Invoice | None:
    """Turn the account's unbilled CDRs into the invoice of its last closed period, once.

    One transaction: locks the account row, then the new invoice, then the number counter.
    Set-based: the lines are one ``INSERT … SELECT`` and the totals are summed from them, so
    the invoice equals its lines even if a CDR commits meanwhile. Returns ``None`` when the
    period already has its invoice or nothing is unbilled.
    """
    with transaction.atomic():
        account = BillingAccount.objects.select_for_update().filter(pk=account_id).first()
        if account is None:
            return None
        period_start, period_end = last_closed_period(account.period, account.time_zone, now)
        if Invoice.objects.filter(account=account, period_start=period_start).exists():
            return None
        unbilled = selectors.cdrs_unbilled_for(account=account, before=period_end)
        if not unbilled.exists():
            return None
        invoice = Invoice.objects.create(
            account=account, period_start=period_start, period_end=period_end, currency=account.currency
        )
        select, params = unbilled.values_list(
            "pk", "total_excl_vat", "total_vat", "total_incl_vat"
        ).query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {InvoiceLine._meta.db_table} (invoice_id, cdr_id, total_excl_vat, total_vat, total_incl_vat)"  # noqa: E501, S608 - our own table names and ORM-built SQL
                f" SELECT %s, u.* FROM ({select}) AS u",
                [invoice.pk, *params],
            )
        totals = invoice.lines.aggregate(
            excl=Sum("total_excl_vat"), vat=Sum("total_vat"), incl=Sum("total_incl_vat")
        )
        invoice.total_excl_vat, invoice.total_vat, invoice.total_incl_vat = (
            totals["excl"],
            totals["vat"],
            totals["incl"],
        )
        invoice.vat_breakdown = _vat_breakdown(invoice_id=invoice.pk)
        invoice.save(
            update_fields=["total_excl_vat", "total_vat", "total_incl_vat", "vat_breakdown", "updated_at"]
        )
        return _issue(invoice, now=now, render_pdf=render_pdf)


def billing_cycle_run(*, now: datetime | None = None, render_pdfs: bool = True) -> CycleResult:
    """Close the last period of every account with unbilled CDRs, one account per transaction.

    Safe to run twice at once, to retry, or to rerun after a crash: each account's invoice is
    made exactly once (account lock + unique constraints), committed accounts are skipped.
    """
    now = now or timezone.now()
    account_ids = list(selectors.accounts_with_unbilled_cdrs(before=now).values_list("pk", flat=True))
    created = []
    for account_id in account_ids:
        invoice = invoice_close_period(account_id=account_id, now=now, render_pdf=render_pdfs)
        if invoice is not None:
            created.append(invoice.pk)
    return CycleResult(accounts_seen=len(account_ids), invoices_created=created)


@transaction.atomic
def invoice_void(*, invoice: Invoice) -> Invoice:
    """open/uncollectible → void. Refused once money was received. Locks the invoice."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.amount_paid > 0:
        raise InvalidTransition("an invoice with payments cannot be voided; issue a credit note")
    _transition(invoice, InvoiceStatus.VOID)
    invoice.voided_at = timezone.now()
    invoice.save(update_fields=["status", "voided_at", "updated_at"])
    return invoice


@transaction.atomic
def invoice_mark_uncollectible(*, invoice: Invoice) -> Invoice:
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    _transition(invoice, InvoiceStatus.UNCOLLECTIBLE)
    invoice.save(update_fields=["status", "updated_at"])
    return invoice


def payment_check(*, invoice: Invoice, amount: Decimal) -> None:
    """Raise the reason ``amount`` cannot be paid on ``invoice`` as it is now (forms use it too)."""
    if not isinstance(amount, Decimal) or amount <= 0:
        raise PaymentRefused("the amount must be positive")
    if round_half_up(amount, invoice.currency) != amount:
        raise PaymentRefused(f"{invoice.currency} amounts have at most its minor unit of decimals")
    if invoice.status not in PAYABLE_STATES:
        raise InvalidTransition(f"a {invoice.status} invoice takes no payments")
    if amount > invoice.amount_due:
        raise PaymentRefused(
            "the amount is more than what is due", details={"amount_due": str(invoice.amount_due)}
        )


@transaction.atomic
def payment_record(
    *,
    invoice: Invoice,
    amount: Decimal,
    reference: str,
    method: str = PaymentMethod.BANK_TRANSFER,
    received_at: datetime | None = None,
    recorded_by=None,
) -> Payment:
    """Record money received against an open or uncollectible invoice (full or partial).

    Never more than the amount due; the payment that settles it moves the invoice to paid.
    Idempotent per ``(invoice, reference)``: the same reference again returns the first payment
    when the amount matches, and is refused otherwise. Locks the invoice.
    """
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    previous = Payment.objects.filter(invoice=invoice, reference=reference).first()
    if previous is not None:
        if previous.amount != amount:
            raise PaymentRefused("this reference was already recorded with another amount")
        return previous
    payment_check(invoice=invoice, amount=amount)
    payment = Payment.objects.create(
        invoice=invoice,
        amount=amount,
        currency=invoice.currency,
        method=method,
        reference=reference,
        received_at=received_at or timezone.now(),
        recorded_by=recorded_by,
    )
    invoice.amount_paid += amount
    fields = ["amount_paid", "updated_at"]
    if invoice.amount_due == 0:
        _transition(invoice, InvoiceStatus.PAID)
        invoice.paid_at = payment.received_at
        fields += ["status", "paid_at"]
    invoice.save(update_fields=fields)
    return payment


def invoice_mark_paid(*, invoice: Invoice, recorded_by=None) -> Invoice:
    """Record the whole amount due as one payment (the admin's "mark paid")."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.amount_due > 0:
            payment_record(
                invoice=invoice,
                amount=invoice.amount_due,
                reference=f"mark-paid-{invoice.pk}-{invoice.payments.count() + 1}",
                method=PaymentMethod.OTHER,
                recorded_by=recorded_by,
            )
        return Invoice.objects.get(pk=invoice.pk)


# --- credit notes ------------------------------------------------------------------------


@transaction.atomic
def credit_note_create(
    *, cdr: Cdr, amount_excl_vat: Decimal | None = None, reason: str, created_by=None
) -> CreditNote:
    """Give back ``amount_excl_vat`` of a CDR (all of what is left when omitted); the CDR is not changed.

    VAT is credited in the CDR's rate proportions, each rate rounded half-up. Refused beyond
    what the CDR still holds after earlier credit notes. Locks the CDR row, then the counter.
    """
    cdr = Cdr.objects.select_for_update().get(pk=cdr.pk)
    credited = cdr.credit_notes.aggregate(total=Sum("total_excl_vat"))["total"] or Decimal(0)
    remaining = cdr.total_excl_vat - credited
    amount = remaining if amount_excl_vat is None else amount_excl_vat
    if amount <= 0 or amount > remaining or round_half_up(amount, cdr.currency) != amount:
        raise Conflict(
            "the credit must be positive, in the currency's minor unit and at most what is left",
            details={"remaining_excl_vat": str(remaining)},
        )
    lines = []
    for line in cdr.vat_breakdown:
        base = Decimal(line["base"]) * amount / cdr.total_excl_vat
        vat = round_half_up(base * Decimal(line["rate"]) / 100, cdr.currency)
        lines.append(
            {"rate": line["rate"], "base": str(base.quantize(Decimal("0.0001"))), "amount": str(vat)}
        )
    total_vat = sum((Decimal(v["amount"]) for v in lines), Decimal(0))
    invoice_line = InvoiceLine.objects.filter(cdr=cdr).first()
    return CreditNote.objects.create(
        number=number_take(series=NumberSeries.CREDIT_NOTE, year=timezone.now().astimezone(UTC).year),
        cdr=cdr,
        invoice_id=invoice_line.invoice_id if invoice_line else None,
        reason=reason,
        currency=cdr.currency,
        total_excl_vat=amount,
        total_vat=total_vat,
        total_incl_vat=amount + total_vat,
        vat_breakdown=lines,
        created_by=created_by,
    )


# --- PDFs --------------------------------------------------------------------------------


def invoice_render_pdf(*, invoice_id: int, force: bool = False) -> Invoice | None:
    """Render the invoice PDF and store it in the default storage (local disk or S3). Idempotent."""
    from billing.pdf import render_invoice

    invoice = Invoice.objects.select_related("account").filter(pk=invoice_id).first()
    if invoice is None or invoice.number is None:
        return None
    if invoice.pdf and not force:
        return invoice
    lines = list(invoice.lines.select_related("cdr").order_by("cdr__stopped_at", "cdr_id"))
    content = render_invoice(invoice=invoice, lines=lines)
    invoice.pdf.save(f"{invoice.number}.pdf", ContentFile(content), save=False)
    Invoice.objects.filter(pk=invoice.pk).update(pdf=invoice.pdf.name)
    return invoice
