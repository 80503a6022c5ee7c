"""Billing cycles, gapless numbers, invoice states, payments and credit notes (services)."""

import importlib
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import services
from billing.choices import InvoiceStatus
from billing.exceptions import InvalidTransition, PaymentRefused, RefundRefused
from billing.models import Cdr, CreditNote, Invoice, InvoiceLine, Refund, UnbilledCdr
from billing.periods import last_closed_period, period_containing
from billing.tests.factories import (
    IdTokenFactory,
    OrganizationFactory,
    SessionFactory,
    account_for_org,
    default_tariff,
    tariff,
)
from evcharge.core.errors import Conflict

pytestmark = pytest.mark.django_db

MARCH = datetime(2026, 3, 2, 10, tzinfo=UTC)


def cdr_for(org, started_at=MARCH, wh=10_000) -> Cdr:
    session = SessionFactory(
        id_token=IdTokenFactory(organization=org), started_at=started_at, meter_stop_wh=wh
    )
    return services.cdr_create_for_session(session_id=session.pk)


def test_an_account_with_an_unknown_time_zone_does_not_stop_the_cycle():
    """Refused on input (the model's validator); one stored before that, or past the ORM, is
    skipped and logged while the batch's other accounts are invoiced."""
    default_tariff(energy="0.30", vat="19")
    good, bad = OrganizationFactory(), OrganizationFactory()
    account_for_org(good)
    broken = account_for_org(bad)
    cdr_for(good)
    cdr_for(bad)
    type(broken).objects.filter(pk=broken.pk).update(time_zone="Mars/Olympus_Mons")

    made = services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC)).invoices_created

    assert [Invoice.objects.get(pk=pk).account.organization for pk in made] == [good]
    assert UnbilledCdr.objects.filter(account=broken).count() == 1  # waits, not lost


def test_periods_follow_the_account_calendar():
    moment = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)  # already April 1st in Berlin (CEST, +2)
    assert period_containing("monthly", "Europe/Berlin", moment) == (
        datetime(2026, 3, 31, 22, tzinfo=UTC),
        datetime(2026, 4, 30, 22, tzinfo=UTC),
    )
    assert period_containing("weekly", "UTC", datetime(2026, 3, 4, tzinfo=UTC))[0] == datetime(
        2026, 3, 2, tzinfo=UTC
    )
    assert last_closed_period("daily", "UTC", datetime(2026, 3, 4, 5, tzinfo=UTC)) == (
        datetime(2026, 3, 3, tzinfo=UTC),
        datetime(2026, 3, 4, tzinfo=UTC),
    )


def test_cycle_makes_one_invoice_per_account_with_gapless_numbers():
    default_tariff(energy="0.30", vat="19")
    orgs = [OrganizationFactory() for _ in range(3)]
    for org in orgs:
        account_for_org(org)
    cdrs = [cdr_for(orgs[0]), cdr_for(orgs[0], wh=5_000), cdr_for(orgs[1])]
    now = datetime(2026, 4, 1, 1, tzinfo=UTC)

    result = services.billing_cycle_run(now=now)
    again = services.billing_cycle_run(now=now)

    assert len(result.invoices_created) == 2  # the third organization had nothing: no invoice
    assert again.invoices_created == []
    invoices = list(Invoice.objects.order_by("number"))
    assert [i.number for i in invoices] == ["INV-2026-000001", "INV-2026-000002"]
    first = Invoice.objects.get(account__organization=orgs[0])
    # 10 kWh → 3.00 + VAT 0.57 = 3.57; 5 kWh → 1.50 + VAT 0.285 → 0.29 = 1.79; sums 4.50 / 0.86 / 5.36
    assert (first.total_excl_vat, first.total_vat, first.total_incl_vat) == (
        Decimal("4.50"),
        Decimal("0.86"),
        Decimal("5.36"),
    )
    assert first.status == InvoiceStatus.OPEN
    assert first.period_start == datetime(2026, 3, 1, tzinfo=UTC)
    assert first.vat_breakdown == [{"rate": "19", "base": "4.5000", "amount": "0.86"}]
    assert set(first.lines.values_list("cdr_id", flat=True)) == {cdrs[0].pk, cdrs[1].pk}


def test_vat_by_rate_sums_single_rate_columns_and_mixed_rate_json_alike():
    """One invoice holding CDRs priced three ways: one VAT rate (summed from the columns), two
    rates (summed from the JSON) and a one-rate CDR from before ``vat_rate`` existed (JSON)."""
    org = OrganizationFactory()
    account_for_org(org)
    services.tariff_assign(
        tariff=services.tariff_save_ocpi(
            data={
                "id": "MIXED",
                "currency": "EUR",
                "elements": [
                    {
                        "price_components": [
                            {"type": "ENERGY", "price": "0.30", "vat": "19", "step_size": 1},
                            {"type": "FLAT", "price": "1.00", "vat": "7", "step_size": 1},
                        ]
                    }
                ],
            }
        ),
        scope="organization",
        target=org,
    )
    mixed = cdr_for(org)  # 10 kWh x 0.30 = 3.00 at 19 % (0.57) + 1.00 flat at 7 % (0.07)
    services.tariff_assign(tariff=tariff("ONE", energy="0.30", vat="19"), scope="organization", target=org)
    single = cdr_for(org, wh=5_000)  # 1.50 at 19 % (0.285 -> 0.29)
    legacy = cdr_for(org, wh=1_000)  # 0.30 at 19 % (0.057 -> 0.06), then made to look pre-column
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE billing_cdr DISABLE TRIGGER billing_cdr_immutable")
        Cdr.objects.filter(pk=legacy.pk).update(vat_rate=None)
        cursor.execute("ALTER TABLE billing_cdr ENABLE TRIGGER billing_cdr_immutable")
    assert (mixed.vat_rate, single.vat_rate) == (None, "19")

    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))

    invoice = Invoice.objects.get()
    # 19 %: bases 3.00 + 1.50 + 0.30 = 4.80, amounts 0.57 + 0.29 + 0.06 = 0.92; 7 %: 1.00 / 0.07
    assert invoice.vat_breakdown == [
        {"rate": "7", "base": "1.0000", "amount": "0.07"},
        {"rate": "19", "base": "4.8000", "amount": "0.92"},
    ]
    assert invoice.total_vat == Decimal("0.99")


def test_late_cdr_lands_on_the_next_invoice_with_its_own_dates():
    default_tariff()
    org = OrganizationFactory()
    account_for_org(org)
    cdr_for(org)
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))  # March invoiced
    late = cdr_for(org, started_at=datetime(2026, 3, 30, 12, tzinfo=UTC))  # a March session, priced late
    assert services.billing_cycle_run(now=datetime(2026, 4, 15, tzinfo=UTC)).invoices_created == []
    services.billing_cycle_run(now=datetime(2026, 5, 1, 1, tzinfo=UTC))
    april = Invoice.objects.get(period_start=datetime(2026, 4, 1, tzinfo=UTC))
    assert list(april.lines.values_list("cdr_id", flat=True)) == [late.pk]
    assert april.lines.get().cdr.stopped_at.month == 3


def test_missed_periods_get_an_invoice_each_and_late_cdrs_the_next_one():
    """Beat was stopped from February to April. January was invoiced; then a late January CDR
    arrived. February and April have CDRs, March none. One run on 1 May makes February's
    invoice (its CDRs and the late January one) and April's — nothing for empty March."""
    default_tariff(energy="0.30", vat="19")
    org = OrganizationFactory()
    account_for_org(org)
    january = cdr_for(org, started_at=datetime(2026, 1, 10, 10, tzinfo=UTC))
    services.billing_cycle_run(now=datetime(2026, 2, 1, 1, tzinfo=UTC))
    late_january = cdr_for(org, started_at=datetime(2026, 1, 20, 10, tzinfo=UTC))
    february = cdr_for(org, started_at=datetime(2026, 2, 10, 10, tzinfo=UTC))
    april = cdr_for(org, started_at=datetime(2026, 4, 10, 10, tzinfo=UTC), wh=2_000)

    made = services.billing_cycle_run(now=datetime(2026, 5, 1, 1, tzinfo=UTC)).invoices_created
    again = services.billing_cycle_run(now=datetime(2026, 5, 1, 1, tzinfo=UTC)).invoices_created

    assert (len(made), again) == (2, [])
    lines = {
        i.period_start.month: set(i.lines.values_list("cdr_id", flat=True))
        for i in Invoice.objects.filter(account__organization=org)
    }
    assert lines == {1: {january.pk}, 2: {late_january.pk, february.pk}, 4: {april.pk}}
    february_invoice = Invoice.objects.get(period_start=datetime(2026, 2, 1, tzinfo=UTC))
    # two 10 kWh CDRs: 2 x (3.00 + 0.57) = 7.14
    assert february_invoice.total_incl_vat == Decimal("7.14")
    assert sorted(Invoice.objects.values_list("number", flat=True)) == [
        "INV-2026-000001",
        "INV-2026-000002",
        "INV-2026-000003",
    ]


def test_a_fan_out_batch_that_runs_late_closes_its_cycles_periods_and_is_issued_when_it_runs():
    from billing.tasks import billing_cycle_batch

    default_tariff()
    org = OrganizationFactory()
    account = account_for_org(org)
    march = cdr_for(org, started_at=datetime(2026, 3, 10, 10, tzinfo=UTC))
    april = cdr_for(org, started_at=datetime(2026, 4, 10, 10, tzinfo=UTC))
    # Sent by the cycle of 1 April 01:00, run months later (a backlog, a redelivery).
    before = datetime.now(UTC)
    made = billing_cycle_batch(account_ids=[account.pk], now="2026-04-01T01:00:00+00:00")
    invoice = Invoice.objects.get()
    assert made == [invoice.pk]
    assert invoice.period_start == datetime(2026, 3, 1, tzinfo=UTC)  # March only, as of its cycle
    assert list(invoice.lines.values_list("cdr_id", flat=True)) == [march.pk]
    assert UnbilledCdr.objects.filter(cdr_id=april.pk).exists()  # April waits for its own cycle
    assert before <= invoice.issued_at <= datetime.now(UTC)  # issued when it ran
    assert invoice.number == f"INV-{invoice.issued_at.year}-000001"
    assert billing_cycle_batch(account_ids=[account.pk], now="2026-04-01T01:00:00+00:00") == []


def test_open_period_is_not_invoiced():
    default_tariff()
    org = OrganizationFactory()
    account_for_org(org, period="daily")
    cdr_for(org, started_at=datetime(2026, 3, 2, 10, tzinfo=UTC))
    assert services.billing_cycle_run(now=datetime(2026, 3, 2, 23, tzinfo=UTC)).invoices_created == []
    assert len(services.billing_cycle_run(now=datetime(2026, 3, 3, 0, 5, tzinfo=UTC)).invoices_created) == 1


def test_other_currency_cdrs_stay_unbilled_and_are_listed():
    from billing import selectors

    default_tariff(currency="JPY", energy="45")
    org = OrganizationFactory()
    account_for_org(org, currency="EUR")
    foreign = cdr_for(org)
    result = services.billing_cycle_run(now=datetime(2026, 4, 2, tzinfo=UTC))
    assert (result.invoices_created, result.other_currency_waiting) == ([], 1)
    assert list(selectors.cdrs_waiting_in_another_currency()) == [foreign]


def test_unbilled_queue_is_kept_by_the_database():
    """The cycle reads what is unbilled from a queue that triggers keep: a CDR with an account
    enters it when written (single or bulk), leaves it when a line bills it, and comes back if
    that line is deleted; a CDR without an account, or a cycle that cannot bill it, changes
    nothing."""
    default_tariff()
    org, other = OrganizationFactory(), OrganizationFactory()
    account_for_org(org)
    account_for_org(other, currency="JPY")  # its EUR CDR cannot be billed
    single = cdr_for(org)
    bulk = [SessionFactory(id_token=IdTokenFactory(organization=org)) for _ in range(3)]
    services.cdrs_create_for_sessions(session_ids=[s.pk for s in bulk])
    foreign = cdr_for(other)
    ownerless = services.cdr_create_for_session(session_id=SessionFactory(id_token=None, id_tag="ANON").pk)
    assert ownerless is not None
    assert ownerless.account_id is None

    def queued():
        return set(UnbilledCdr.objects.values_list("cdr_id", flat=True))

    billable = {single.pk, *Cdr.objects.filter(session__in=bulk).values_list("pk", flat=True)}
    assert queued() == billable | {foreign.pk}
    money = ("currency", "stopped_at", "total_excl_vat", "total_vat", "total_incl_vat", "vat_rate")
    for row in UnbilledCdr.objects.select_related("cdr"):  # copied whole: invoicing reads no CDR row
        assert row.account_id == row.cdr.account_id
        assert [getattr(row, f) for f in money] == [getattr(row.cdr, f) for f in money]
    assert UnbilledCdr.objects.get(cdr=single).vat_rate == "19"

    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))
    assert set(InvoiceLine.objects.values_list("cdr_id", flat=True)) == billable
    assert set(InvoiceLine.objects.values_list("vat_rate", flat=True)) == {"19"}
    assert queued() == {foreign.pk}  # billed ones left; the other currency's waits, visible

    with connection.cursor() as cursor:  # past the ORM: the trigger still puts it back
        cursor.execute("DELETE FROM billing_invoiceline WHERE cdr_id = %s", [single.pk])
    assert queued() == {foreign.pk, single.pk}


def test_database_refuses_a_second_invoice_or_a_cdr_twice():
    default_tariff()
    org = OrganizationFactory()
    account_for_org(org)
    cdr = cdr_for(org)
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))
    invoice = Invoice.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(
            account=invoice.account,
            period_start=invoice.period_start,
            period_end=invoice.period_end,
            currency="EUR",
        )
    other = Invoice.objects.create(
        account=invoice.account,
        period_start=invoice.period_end,
        period_end=invoice.period_end + timedelta(days=30),
        currency="EUR",
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceLine.objects.create(invoice=other, cdr=cdr, total_excl_vat=0, total_vat=0, total_incl_vat=0)


def test_invoices_cannot_be_deleted_even_past_the_orm():
    """An issued number must stay (gapless series): the database refuses any DELETE."""
    invoice = issued_invoice()
    with pytest.raises(IntegrityError, match="cannot be deleted"), transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk)._raw_delete(Invoice.objects.db)
    assert Invoice.objects.filter(pk=invoice.pk).exists()


def issued_invoice(total_wh=10_000) -> Invoice:
    default_tariff(energy="0.30", vat="19")
    org = OrganizationFactory()
    account_for_org(org)
    cdr_for(org, wh=total_wh)
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))
    return Invoice.objects.get()


def test_partial_then_full_payment_pays_the_invoice():
    invoice = issued_invoice()  # 3.57 incl. VAT
    services.payment_record(invoice=invoice, amount=Decimal("1.00"), reference="bank-1")
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == (InvoiceStatus.OPEN, Decimal("2.57"))
    services.payment_record(invoice=invoice, amount=Decimal("1.00"), reference="bank-1")  # a replay
    services.payment_record(invoice=invoice, amount=Decimal("2.57"), reference="bank-2")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.payments.count() == 2
    with pytest.raises(InvalidTransition):
        services.payment_record(invoice=invoice, amount=Decimal("0.01"), reference="bank-3")


@pytest.mark.parametrize(
    ("amount", "reference"),
    [
        (Decimal("3.58"), "too-much"),
        (Decimal("0"), "zero"),
        (Decimal("1.005"), "sub-cent"),
        (Decimal("2"), "bank-1"),
    ],
)
def test_payments_refused(amount, reference):
    invoice = issued_invoice()
    services.payment_record(invoice=invoice, amount=Decimal("1.00"), reference="bank-1")
    with pytest.raises(PaymentRefused):
        services.payment_record(invoice=invoice, amount=amount, reference=reference)


def test_mark_paid_and_transitions():
    invoice = issued_invoice()
    paid = services.invoice_mark_paid(invoice=invoice)
    assert paid.status == InvoiceStatus.PAID
    assert paid.amount_due == 0
    with pytest.raises(InvalidTransition, match="nothing is due"):
        services.invoice_mark_paid(invoice=paid)
    assert paid.payments.count() == 1
    with pytest.raises(InvalidTransition):
        services.invoice_void(invoice=paid)


def test_void_refused_after_payment_and_allowed_before():
    invoice = issued_invoice()
    services.payment_record(invoice=invoice, amount=Decimal("1.00"), reference="r")
    with pytest.raises(InvalidTransition):
        services.invoice_void(invoice=invoice)
    invoice2 = Invoice.objects.create(
        account=invoice.account,
        period_start=invoice.period_end,
        period_end=invoice.period_end + timedelta(days=30),
        currency="EUR",
    )
    with pytest.raises(InvalidTransition):
        services.invoice_void(invoice=invoice2)  # a draft is issued or left, never voided
    services.invoice_issue(invoice=invoice2)
    services.invoice_mark_uncollectible(invoice=invoice2)
    assert services.invoice_void(invoice=invoice2).status == InvoiceStatus.VOID


def test_credit_notes_never_exceed_the_cdr():
    invoice = issued_invoice()
    cdr = invoice.lines.get().cdr
    note = services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("1.00"), reason="meter fault")
    # 1.00 at 19 % → 0.19
    assert (note.number, note.total_vat, note.total_incl_vat, note.invoice) == (
        f"CN-{datetime.now(UTC).year}-000001",
        Decimal("0.19"),
        Decimal("1.19"),
        invoice,
    )
    rest = services.credit_note_create(cdr=cdr, reason="goodwill")
    assert rest.total_excl_vat == Decimal("2.00")
    with pytest.raises(Conflict):
        services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("0.01"), reason="too much")
    cdr.refresh_from_db()
    assert cdr.total_excl_vat == Decimal("3.00")  # the CDR itself never changes
    assert CreditNote.objects.count() == 2


def test_credit_notes_never_give_back_more_vat_than_the_cdr_charged():
    default_tariff(energy="0.30", vat="19")
    org = OrganizationFactory()
    account_for_org(org)
    cdr = cdr_for(org, wh=200)  # 0.2 kWh x 0.30 = 0.06; VAT 19 % = 0.0114 -> 0.01
    assert (cdr.total_excl_vat, cdr.total_vat) == (Decimal("0.06"), Decimal("0.01"))
    first = services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("0.03"), reason="half")
    second = services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("0.03"), reason="the rest")
    # so far 0.01 x 1/2 = 0.005 -> 0.01 given back; then 0.01 x 2/2 = 0.01, less 0.01 already: 0.00
    # (each note rounded on its own would give back 0.02 of the 0.01 charged)
    assert (first.total_vat, second.total_vat) == (Decimal("0.01"), Decimal("0.00"))


def test_crediting_a_multi_rate_cdr_in_full_gives_back_exactly_its_vat():
    data = {
        "id": "MIXED",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": "0.37", "vat": "19", "step_size": 1},
                    {"type": "FLAT", "price": "0.99", "vat": "7", "step_size": 1},
                ]
            }
        ],
    }
    services.tariff_assign(tariff=services.tariff_save_ocpi(data=data), scope="default")
    org = OrganizationFactory()
    account_for_org(org)
    for wh in (4_054, 1_234, 77_777, 15):
        cdr = cdr_for(org, wh=wh)
        note = services.credit_note_create(cdr=cdr, reason="in full")
        assert (note.total_excl_vat, note.total_vat) == (cdr.total_excl_vat, cdr.total_vat), wh
        assert [line["amount"] for line in note.vat_breakdown] == [
            line["amount"] for line in cdr.vat_breakdown
        ]


def test_a_credit_note_lowers_what_its_invoice_is_owed():
    invoice = issued_invoice()  # one CDR: 3.00 + 0.57 = 3.57
    cdr = invoice.lines.get().cdr
    services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("1.00"), reason="meter fault")  # 1.19
    invoice.refresh_from_db()
    assert (invoice.amount_credited, invoice.amount_due, invoice.status) == (
        Decimal("1.19"),
        Decimal("2.38"),
        InvoiceStatus.OPEN,
    )
    with pytest.raises(PaymentRefused):
        services.payment_record(invoice=invoice, amount=Decimal("3.57"), reference="too-much")
    with pytest.raises(InvalidTransition):
        services.invoice_void(invoice=invoice)  # credited: credit the rest instead
    services.credit_note_create(cdr=cdr, reason="the rest")  # 2.00 + 0.38 (0.57 in all)
    invoice.refresh_from_db()
    assert (invoice.amount_credited, invoice.amount_due, invoice.status) == (
        Decimal("3.57"),
        Decimal("0"),
        InvoiceStatus.PAID,
    )
    assert invoice.paid_at is not None


def test_a_credit_note_on_a_paid_invoice_is_owed_back_and_a_void_one_refuses_it():
    paid = issued_invoice()
    services.invoice_mark_paid(invoice=paid)
    services.credit_note_create(cdr=paid.lines.get().cdr, amount_excl_vat=Decimal("1.00"), reason="x")
    paid.refresh_from_db()
    assert (paid.status, paid.amount_due, paid.amount_refundable) == (
        InvoiceStatus.PAID,
        Decimal("0"),
        Decimal("1.19"),
    )
    org = OrganizationFactory()
    account_for_org(org)
    cdr = cdr_for(org)
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))
    void = services.invoice_void(invoice=Invoice.objects.get(account__organization=org))
    with pytest.raises(Conflict, match="void"):
        services.credit_note_create(cdr=cdr, reason="nothing was charged")
    assert not CreditNote.objects.filter(cdr=cdr).exists()
    assert void.amount_credited == 0


def refundable_invoice() -> Invoice:
    """Paid 3.57 in full, then credited 1.00 + 0.19 VAT: 1.19 owed back."""
    invoice = services.invoice_mark_paid(invoice=issued_invoice())
    services.credit_note_create(cdr=invoice.lines.get().cdr, amount_excl_vat=Decimal("1.00"), reason="x")
    invoice.refresh_from_db()
    assert invoice.amount_refundable == Decimal("1.19")
    return invoice


def test_refunds_pay_back_what_is_owed_back_once_per_reference():
    invoice = refundable_invoice()
    first = services.refund_record(invoice=invoice, amount=Decimal("0.50"), reference="sepa-1")
    assert (
        services.refund_record(invoice=invoice, amount=Decimal("0.50"), reference="sepa-1") == first
    )  # replay
    invoice.refresh_from_db()
    assert (invoice.amount_refunded, invoice.amount_refundable, invoice.status) == (
        Decimal("0.50"),
        Decimal("0.69"),
        InvoiceStatus.PAID,
    )
    with pytest.raises(RefundRefused) as refused:
        services.refund_record(invoice=invoice, amount=Decimal("0.70"), reference="sepa-2")
    assert refused.value.details == {"amount_refundable": "0.690"}
    services.refund_record(invoice=invoice, amount=Decimal("0.69"), reference="sepa-2")
    invoice.refresh_from_db()
    assert (invoice.amount_refunded, invoice.amount_refundable, invoice.refunds.count()) == (
        Decimal("1.19"),
        Decimal("0"),
        2,
    )


@pytest.mark.parametrize(
    ("amount", "reference"),
    [
        (Decimal("1.20"), "too-much"),
        (Decimal("0"), "zero"),
        (Decimal("0.005"), "sub-cent"),
        (Decimal("0.20"), "sepa-1"),  # the reference was recorded with 0.10
    ],
)
def test_refunds_refused(amount, reference):
    invoice = refundable_invoice()
    services.refund_record(invoice=invoice, amount=Decimal("0.10"), reference="sepa-1")
    with pytest.raises(RefundRefused):
        services.refund_record(invoice=invoice, amount=amount, reference=reference)
    invoice.refresh_from_db()
    assert (invoice.amount_refunded, invoice.refunds.count()) == (Decimal("0.10"), 1)


def test_a_note_after_a_full_refund_is_owed_back_again():
    invoice = refundable_invoice()
    services.refund_record(invoice=invoice, amount=Decimal("1.19"), reference="r1")
    services.credit_note_create(cdr=invoice.lines.get().cdr, amount_excl_vat=Decimal("0.50"), reason="y")
    invoice.refresh_from_db()  # 0.50 + 0.10 VAT (round_half_up(0.57 x 1.50 / 3.00) = 0.29, less 0.19)
    assert (invoice.amount_credited, invoice.amount_refunded, invoice.amount_refundable) == (
        Decimal("1.79"),
        Decimal("1.19"),
        Decimal("0.60"),
    )
    services.refund_record(invoice=invoice, amount=Decimal("0.60"), reference="r2")
    invoice.refresh_from_db()
    assert (invoice.amount_refunded, invoice.amount_refundable, invoice.status) == (
        Decimal("1.79"),
        Decimal("0"),
        InvoiceStatus.PAID,
    )


def test_an_invoice_that_owes_nothing_back_takes_no_refund():
    invoice = issued_invoice()  # open, nothing paid
    with pytest.raises(RefundRefused, match="more than what is owed back"):
        services.refund_record(invoice=invoice, amount=Decimal("0.01"), reference="r")


def test_the_database_refuses_refunding_more_than_is_owed_back():
    invoice = refundable_invoice()
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=invoice.pk).update(amount_refunded=Decimal("1.20"))
    services.refund_record(invoice=invoice, amount=Decimal("0.10"), reference="r")
    with pytest.raises(IntegrityError), transaction.atomic():
        Refund.objects.create(
            invoice=invoice, amount=Decimal("0.10"), currency="EUR", reference="r", refunded_at=MARCH
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Refund.objects.create(
            invoice=invoice, amount=Decimal("0"), currency="EUR", reference="zero", refunded_at=MARCH
        )


def test_a_credit_note_made_before_invoicing_is_applied_by_the_cycle():
    default_tariff(energy="0.30", vat="19")
    orgs = [OrganizationFactory(), OrganizationFactory()]
    for org in orgs:
        account_for_org(org)
    partly = cdr_for(orgs[0])  # 3.57
    fully = cdr_for(orgs[1])
    early = services.credit_note_create(cdr=partly, amount_excl_vat=Decimal("1.00"), reason="x")
    services.credit_note_create(cdr=fully, reason="all of it")
    assert early.invoice is None

    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))

    first = Invoice.objects.get(account__organization=orgs[0])
    second = Invoice.objects.get(account__organization=orgs[1])
    early.refresh_from_db()
    assert early.invoice == first
    assert (first.total_incl_vat, first.amount_credited, first.amount_due, first.status) == (
        Decimal("3.57"),
        Decimal("1.19"),
        Decimal("2.38"),
        InvoiceStatus.OPEN,
    )
    assert (second.amount_credited, second.amount_due, second.status) == (
        Decimal("3.57"),
        Decimal("0"),
        InvoiceStatus.PAID,
    )


def test_the_pdf_of_an_invoice_credited_before_issue_shows_what_is_due():
    from billing.pdf import render_invoice

    default_tariff(energy="0.30", vat="19")
    org = OrganizationFactory()
    account_for_org(org)
    services.credit_note_create(cdr=cdr_for(org), amount_excl_vat=Decimal("1.00"), reason="x")
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC), render_pdfs=False)
    invoice = Invoice.objects.get()
    pdf = render_invoice(invoice=invoice, lines=list(invoice.lines.select_related("cdr")))
    text = _pdf_text(pdf)
    for shown in ("(Credit notes)", "(-1.19 EUR)", "(Amount due)", "(2.38 EUR)", "(3.57 EUR)"):
        assert shown in text
    assert "OPEN" not in text


def test_the_pdf_of_a_void_invoice_says_so():
    from billing.pdf import render_invoice

    invoice = services.invoice_void(invoice=issued_invoice())
    text = _pdf_text(render_invoice(invoice=invoice, lines=list(invoice.lines.select_related("cdr"))))
    assert f"(Invoice {invoice.number} \\(VOID\\))" in text  # PDF strings escape parentheses


def test_the_pdf_of_a_credit_note_shows_what_it_corrects_and_gives_back():
    from billing.pdf import render_credit_note

    invoice = issued_invoice()  # one CDR of 10 kWh: 3.00 + 0.57 = 3.57
    cdr = invoice.lines.get().cdr
    note = services.credit_note_create(
        cdr=cdr, amount_excl_vat=Decimal("1.00"), reason="meter <b>fault</b> & reset"
    )
    text = _pdf_text(render_credit_note(note=note))
    for shown in (
        f"(Credit note {note.number})",
        f"(Corrects invoice {invoice.number} of {invoice.issued_at:%Y-%m-%d} UTC)",
        f"({cdr.charge_point_identity}#{cdr.connector_id})",
        "(10)",  # kWh of the CDR
        "(3.00)",  # what the CDR charged, excl. VAT
        "(3.57)",  # and incl. VAT
        "(19 %)",
        "(1.00 EUR)",  # credited excl. VAT
        "(0.19 EUR)",  # VAT given back: round_half_up(0.57 x 1/3) = 0.19
        "(1.19 EUR)",
    ):
        assert shown in text, shown
    # People's text is shown as typed, not read as markup (unescaped, reportlab would take <b> as
    # bold and draw no "<b>"); it draws the line in pieces.
    drawn = "".join(re.findall(r"\(((?:\\.|[^\\)])*)\) Tj", text))
    assert "Reason: meter <b>fault</b> & reset" in drawn


def test_the_pdf_of_a_credit_note_on_a_cdr_not_invoiced_yet_says_where_it_goes():
    from billing.pdf import render_credit_note

    default_tariff(energy="0.30", vat="19")
    org = OrganizationFactory()
    account_for_org(org)
    note = services.credit_note_create(cdr=cdr_for(org), reason="goodwill")  # all of 3.00
    text = _pdf_text(render_credit_note(note=note))
    assert "(The CDR is not invoiced yet: this credit is deducted from the invoice it lands on)" in text
    assert "(3.57 EUR)" in text
    assert "Corrects invoice" not in text


def test_a_credit_note_pdf_is_stored_once_and_the_note_enqueues_it_after_commit(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    invoice = issued_invoice()
    with django_capture_on_commit_callbacks() as callbacks:
        note = services.credit_note_create(cdr=invoice.lines.get().cdr, reason="x")
    assert len(callbacks) == 1  # the task is sent once the note is committed (test_workers.py runs it)
    assert not note.pdf
    services.credit_note_render_pdf(credit_note_id=note.pk)
    note.refresh_from_db()
    assert note.pdf.name == f"credit-notes/{note.number.split('-')[1]}/{note.number}.pdf"
    assert (tmp_path / note.pdf.name).read_bytes().startswith(b"%PDF")
    stored = tmp_path / note.pdf.name

    def folder() -> list[str]:
        return sorted(p.name for p in stored.parent.iterdir())

    before = stored.stat().st_mtime_ns
    services.credit_note_render_pdf(credit_note_id=note.pk)  # a retried task: nothing new
    assert (folder(), stored.stat().st_mtime_ns) == ([f"{note.number}.pdf"], before)
    # Forced (a note attached to its invoice later): the new file is stored, then the row
    # names it, then the old one goes. One file, the one the row names.
    services.credit_note_render_pdf(credit_note_id=note.pk, force=True)
    note.refresh_from_db()
    replaced = tmp_path / note.pdf.name
    assert replaced != stored
    assert folder() == [replaced.name]
    assert replaced.name.startswith(note.number)
    assert replaced.read_bytes().startswith(b"%PDF")
    assert services.credit_note_render_pdf(credit_note_id=note.pk + 1000) is None


def test_the_pdf_of_a_note_that_waited_for_its_invoice_says_it_was_deducted_there():
    from billing.pdf import render_credit_note

    default_tariff(energy="0.30", vat="19")
    org = OrganizationFactory()
    account_for_org(org)
    note = services.credit_note_create(cdr=cdr_for(org), amount_excl_vat=Decimal("1.00"), reason="x")
    services.billing_cycle_run(now=datetime.now(UTC) + timedelta(days=62), render_pdfs=False)
    note.refresh_from_db()
    invoice = Invoice.objects.get()
    assert note.invoice == invoice
    assert invoice.issued_at > note.created_at
    text = _pdf_text(render_credit_note(note=note))
    assert (
        f"(The CDR was not invoiced yet: this credit is deducted on invoice {invoice.number} "
        f"of {invoice.issued_at:%Y-%m-%d} UTC)"
    ) in text
    assert "Corrects invoice" not in text


def test_the_pdf_of_a_credit_note_lists_each_vat_rate_in_the_currency_unit():
    from billing.pdf import render_credit_note

    data = {
        "id": "MIXED-JPY",
        "currency": "JPY",
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": "45", "vat": "10", "step_size": 1},
                    {"type": "FLAT", "price": "100", "vat": "8", "step_size": 1},
                ]
            }
        ],
    }
    services.tariff_assign(tariff=services.tariff_save_ocpi(data=data), scope="default")
    org = OrganizationFactory()
    account_for_org(org, currency="JPY")
    cdr = cdr_for(org)  # 10 kWh x 45 = 450 at 10 %, 100 flat at 8 %: 550, VAT 45 + 8 = 53
    assert (cdr.total_excl_vat, cdr.total_vat) == (Decimal("550"), Decimal("53"))
    note = services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("275"), reason="half")
    # half of each rate's VAT, rounded half-up: 22.5 -> 23 and 4 -> 4
    assert [(v["rate"], v["amount"]) for v in note.vat_breakdown] == [("8", "4"), ("10", "23")]
    text = _pdf_text(render_credit_note(note=note))
    for shown in ("(10 %)", "(23)", "(8 %)", "(4)", "(275 JPY)", "(27 JPY)", "(302 JPY)", "(550)", "(603)"):
        assert shown in text, shown


def _pdf_text(pdf: bytes) -> str:
    """The page content of a reportlab PDF: its streams, ASCII85 then Flate decoded."""
    import base64
    import re
    import zlib

    pages = []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.DOTALL):
        data = stream.strip()
        if data.endswith(b"~>"):
            data = base64.a85decode(data, adobe=True)
        try:
            pages.append(zlib.decompress(data).decode("latin-1"))
        except zlib.error:
            pages.append(data.decode("latin-1"))
    return "\n".join(pages)


def test_an_invoice_of_nothing_is_issued_paid():
    invoice = issued_invoice(total_wh=0)  # a session that delivered nothing: 0.00
    assert (invoice.total_incl_vat, invoice.status) == (Decimal("0"), InvoiceStatus.PAID)
    assert invoice.paid_at == invoice.issued_at


def test_a_cdr_in_another_currency_than_its_account_cannot_be_credited():
    default_tariff(currency="JPY", energy="45")
    org = OrganizationFactory()
    account_for_org(org, currency="EUR")
    with pytest.raises(Conflict, match="not invoiced"):
        services.credit_note_create(cdr=cdr_for(org), reason="x")
    assert not CreditNote.objects.exists()


def test_a_cdr_billed_to_no_account_cannot_be_credited():
    default_tariff()
    session = SessionFactory(id_token=None, id_tag="ANONYMOUS")
    cdr = services.cdr_create_for_session(session_id=session.pk)
    assert cdr.account is None
    with pytest.raises(Conflict, match="no account"):
        services.credit_note_create(cdr=cdr, reason="x")


# --- properties --------------------------------------------------------------------------

session_energy = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 80_000), st.integers(0, 60)), min_size=1, max_size=12
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session_energy, st.sampled_from(["EUR", "JPY", "KWD"]))
def test_invoice_totals_are_sums_of_cdrs_and_no_cdr_is_billed_twice(sessions, currency):
    """Random sessions over random accounts and days; several cycles over two months."""
    with transaction.atomic():
        default_tariff(currency=currency, energy={"EUR": "0.3456", "JPY": "47", "KWD": "0.0123"}[currency])
        orgs = [OrganizationFactory() for _ in range(4)]
        for org in orgs:
            account_for_org(org, currency=currency, period="weekly")
        for org_index, wh, day in sessions:
            cdr_for(
                orgs[org_index], started_at=datetime(2026, 3, 1, 8, tzinfo=UTC) + timedelta(days=day), wh=wh
            )
        for day in range(0, 70, 3):
            services.billing_cycle_run(now=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(days=day))

        cdr_ids = list(InvoiceLine.objects.values_list("cdr_id", flat=True))
        assert len(cdr_ids) == len(set(cdr_ids)) == Cdr.objects.count()  # all billed, none twice
        for invoice in Invoice.objects.prefetch_related("lines__cdr"):
            cdrs = [line.cdr for line in invoice.lines.all()]
            assert invoice.total_excl_vat == sum(c.total_excl_vat for c in cdrs)
            assert invoice.total_vat == sum(c.total_vat for c in cdrs)
            assert invoice.total_incl_vat == sum(c.total_incl_vat for c in cdrs)
            assert sum(Decimal(v["amount"]) for v in invoice.vat_breakdown) == invoice.total_vat
        numbers = sorted(int(n.rsplit("-", 1)[1]) for n in Invoice.objects.values_list("number", flat=True))
        assert numbers == list(range(1, len(numbers) + 1))
        transaction.set_rollback(True)


actions = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(1, 400)),  # cents
        st.tuples(st.sampled_from(["void", "uncollectible", "mark_paid"]), st.just(0)),
    ),
    max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions)
def test_invoice_state_machine_keeps_its_invariants(steps):
    """Random payments and state changes: only allowed moves happen; money never exceeds the total."""
    from billing.choices import INVOICE_TRANSITIONS

    with transaction.atomic():
        invoice = issued_invoice()  # 3.57 incl. VAT
        for n, (action, cents) in enumerate(steps):
            before = Invoice.objects.get(pk=invoice.pk)
            try:
                if action == "pay":
                    services.payment_record(invoice=before, amount=Decimal(cents) / 100, reference=f"r{n}")
                elif action == "void":
                    services.invoice_void(invoice=before)
                elif action == "uncollectible":
                    services.invoice_mark_uncollectible(invoice=before)
                else:
                    services.invoice_mark_paid(invoice=before)
            except (InvalidTransition, PaymentRefused):
                pass
            after = Invoice.objects.get(pk=invoice.pk)
            assert after.status == before.status or after.status in INVOICE_TRANSITIONS[before.status]
            assert Decimal(0) <= after.amount_paid <= after.total_incl_vat
            assert after.amount_paid == sum(p.amount for p in after.payments.all())
            assert (after.status == InvoiceStatus.PAID) == (after.amount_due == 0)
            if after.status == InvoiceStatus.VOID:
                assert after.amount_paid == 0
        transaction.set_rollback(True)


def test_migration_backfill_queues_cdrs_with_an_account_and_no_line():
    """Migration 0008 fills the queue from existing rows: exactly the CDRs that have an account
    and no invoice line."""
    backfill = importlib.import_module("billing.migrations.0008_unbilled_cdr_queue").BACKFILL
    default_tariff()
    org = OrganizationFactory()
    account_for_org(org)
    billed = cdr_for(org)
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))
    waiting = cdr_for(org, started_at=datetime(2026, 4, 2, 10, tzinfo=UTC))
    services.cdr_create_for_session(session_id=SessionFactory(id_token=None, id_tag="ANON").pk)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM billing_unbilledcdr")
        cursor.execute(backfill)
    assert InvoiceLine.objects.filter(cdr=billed).exists()
    assert list(UnbilledCdr.objects.values_list("cdr_id", flat=True)) == [waiting.pk]


def test_the_lines_statement_gets_memory_for_its_lines_and_hands_the_setting_back(monkeypatch):
    """The lines' statement keeps its new rows in memory up to ``work_mem`` (the queue trigger's
    transition table, the sums): the cycle raises it for the CDRs waiting on its invoices,
    for that statement only."""
    default_tariff(energy="0.30", vat="19")
    orgs = [OrganizationFactory() for _ in range(2)]
    accounts = [account_for_org(org).pk for org in orgs]
    for org in orgs:
        cdr_for(org)
        cdr_for(org, wh=5_000)
    monkeypatch.setattr(services, "_LINE_MEMORY", 100_000)  # 4 lines: 390 kB asked for
    real_lines = services._lines_insert
    during = []

    def lines(invoices):
        with connection.cursor() as cursor:
            cursor.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'work_mem'")
            during.append(cursor.fetchone()[0])
        return real_lines(invoices)

    monkeypatch.setattr(services, "_lines_insert", lines)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64kB'")
        made = services.invoices_close_periods(account_ids=accounts, now=datetime(2026, 4, 1, 1, tzinfo=UTC))
        cursor.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'work_mem'")
        after = cursor.fetchone()[0]
    assert len(made) == 2
    assert during == [4 * 100_000 // 1024]
    assert after == 64
