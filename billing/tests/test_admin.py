"""The billing back office through Django's test client, as an operator uses it."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from billing import services
from billing.choices import InvoiceStatus
from billing.models import Cdr, CreditNote, Invoice, Payment, Refund, Tariff
from billing.tests.factories import (
    IdTokenFactory,
    OrganizationFactory,
    SessionFactory,
    UserFactory,
    account_for_org,
    default_tariff,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def invoices(n: int = 2) -> list[Invoice]:
    default_tariff(energy="0.30", vat="19")
    for _ in range(n):
        org = OrganizationFactory()
        account_for_org(org)
        services.cdr_create_for_session(
            session_id=SessionFactory(id_token=IdTokenFactory(organization=org)).pk
        )
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))
    return list(Invoice.objects.order_by("pk"))


def test_pages_open(operator):
    invoice = invoices(1)[0]
    cdr = Cdr.objects.get()
    tariff = Tariff.objects.get()
    for url in [
        reverse("admin:billing_tariff_changelist"),
        reverse("admin:billing_tariff_change", args=[tariff.pk]),
        reverse("admin:billing_tariff_add"),
        reverse("admin:billing_cdr_changelist"),
        reverse("admin:billing_cdr_change", args=[cdr.pk]),
        reverse("admin:billing_invoice_changelist"),
        reverse("admin:billing_invoice_change", args=[invoice.pk]),
        reverse("admin:billing_payment_add"),
        reverse("admin:billing_billingaccount_changelist"),
        reverse("admin:billing_tariffassignment_add"),
    ]:
        assert operator.get(url).status_code == 200, url
    page = operator.get(reverse("admin:billing_invoice_changelist")).content.decode()
    assert "Run billing now" in page
    assert f"{invoice.number}.pdf" in page


def test_cdrs_are_read_only(operator):
    invoices(1)
    cdr = Cdr.objects.get()
    assert (
        operator.post(reverse("admin:billing_cdr_change", args=[cdr.pk]), {"id_tag": "x"}).status_code == 403
    )
    assert operator.get(reverse("admin:billing_cdr_add")).status_code == 403


def test_price_an_example_session(operator):
    # 17:00 local boundary: 0.40 after, 0.30 before; 15:00-17:00 UTC = 16:00-18:00 Berlin, 20 kWh
    tariff = services.tariff_save_ocpi(
        data={
            "id": "TOD",
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [{"type": "ENERGY", "price": "0.40"}],
                    "restrictions": {"start_time": "17:00"},
                },
                {"price_components": [{"type": "ENERGY", "price": "0.30"}]},
            ],
        }
    )
    url = reverse("admin:billing_tariff_preview", args=[tariff.pk])
    response = operator.post(
        url,
        {
            "started_at": "2026-03-02 15:00",
            "charging_minutes": 120,
            "parking_minutes": 0,
            "energy_kwh": "20",
            "time_zone": "Europe/Berlin",
        },
    )
    assert response.status_code == 200
    assert response.context["result"]["total_excl_vat"] == "7.00"  # 10 x 0.30 + 10 x 0.40
    good = {"started_at": "2026-03-02 15:00", "charging_minutes": 60, "parking_minutes": 0,
            "energy_kwh": "20", "time_zone": "UTC"}  # fmt: skip
    for change, field in [
        ({"charging_minutes": 10**12}, "charging_minutes"),
        ({"parking_minutes": 10**10}, "parking_minutes"),
        ({"started_at": "9999-12-31 23:00"}, "started_at"),
        ({"charging_minutes": 0}, "charging_minutes"),  # 20 kWh in no time
    ]:
        refused = operator.post(url, {**good, **change})
        assert refused.status_code == 200, change
        assert field in refused.context["form"].errors, change
        assert refused.context["result"] is None


def test_tariff_with_elements_is_created_in_the_admin(operator):
    prefix = "elements"
    data = {
        "ocpi_id": "ADMIN-1",
        "currency": "EUR",
        "country_code": "DE",
        "party_id": "EVC",
        "alt_text": "[]",
        f"{prefix}-TOTAL_FORMS": "1",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "1",
        f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-position": "0",
        f"{prefix}-0-energy_price": "0.35",
        f"{prefix}-0-energy_vat": "19",
        f"{prefix}-0-energy_step_size": "1",
        f"{prefix}-0-time_step_size": "1",
        f"{prefix}-0-parking_time_step_size": "1",
        f"{prefix}-0-flat_step_size": "1",
        f"{prefix}-0-day_of_week": '["SATURDAY"]',
    }
    response = operator.post(reverse("admin:billing_tariff_add"), data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    element = Tariff.objects.get(ocpi_id="ADMIN-1").elements.get()
    assert (element.energy_price, element.day_of_week) == (Decimal("0.35"), ["SATURDAY"])

    bad = {**data, "ocpi_id": "ADMIN-2", f"{prefix}-0-day_of_week": '["FUNDAY"]'}
    assert operator.post(reverse("admin:billing_tariff_add"), bad).status_code == 200
    assert not Tariff.objects.filter(ocpi_id="ADMIN-2").exists()


def _posted_back(page) -> dict:
    """The change form of ``page`` as a browser would send it back, unchanged."""
    data = {}
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({f"{management.prefix}-{name}": management[name].value() for name in management.fields})
        forms += list(inline.formset.forms)
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is not None:
                data[form.add_prefix(name)] = value
    return data


def test_tariff_elements_swap_places_in_the_admin(operator):
    tariff = services.tariff_save_ocpi(
        data={
            "id": "SWAP",
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [{"type": "ENERGY", "price": "0.40"}],
                    "restrictions": {"start_time": "17:00"},
                },
                {"price_components": [{"type": "ENERGY", "price": "0.30"}]},
            ],
        }
    )
    url = reverse("admin:billing_tariff_change", args=[tariff.pk])
    data = _posted_back(operator.get(url))
    data["elements-0-position"], data["elements-1-position"] = "1", "0"

    response = operator.post(url, data)

    assert response.status_code == 302, response.context["errors"] if response.context else response
    prices = list(tariff.elements.order_by("position").values_list("energy_price", flat=True))
    assert prices == [Decimal("0.30"), Decimal("0.40")]


def test_mark_paid_and_void_actions(operator):
    first, second = invoices(2)
    changelist = reverse("admin:billing_invoice_changelist")
    operator.post(changelist, {"action": "mark_paid", "_selected_action": [first.pk]}, follow=True)
    operator.post(changelist, {"action": "void", "_selected_action": [first.pk, second.pk]}, follow=True)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == InvoiceStatus.PAID  # paid invoices cannot be voided
    assert second.status == InvoiceStatus.VOID
    assert Payment.objects.get().amount == first.total_incl_vat
    # Marking [paid, void] paid again: each gets its refusal, none is counted as marked paid.
    again = operator.post(
        changelist, {"action": "mark_paid", "_selected_action": [first.pk, second.pk]}, follow=True
    )
    shown = [str(m) for m in again.context["messages"]]
    assert any("nothing is due" in m for m in shown)
    assert any("void invoice takes no payments" in m for m in shown)
    assert not any("marked paid" in m for m in shown)
    assert Payment.objects.count() == 1


def test_payment_recorded_through_the_admin(operator):
    invoice = invoices(1)[0]
    url = reverse("admin:billing_payment_add")
    form = {
        "invoice": invoice.pk,
        "method": "bank_transfer",
        "reference": "SEPA-9",
        "received_at_0": "2026-04-02",
        "received_at_1": "10:00",
    }
    too_much = operator.post(url, {**form, "amount": str(invoice.total_incl_vat + 1)})
    assert too_much.status_code == 200
    assert Payment.objects.count() == 0
    assert operator.post(url, {**form, "amount": "1.00"}).status_code == 302
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("1.00")


def test_refund_recorded_through_the_admin(operator):
    invoice = services.invoice_mark_paid(invoice=invoices(1)[0])  # 3.57 paid
    services.credit_note_create(cdr=Cdr.objects.get(), amount_excl_vat=Decimal("1.00"), reason="x")  # 1.19
    url = reverse("admin:billing_refund_add")
    form = {
        "invoice": invoice.pk,
        "method": "bank_transfer",
        "reference": "SEPA-R1",
        "refunded_at_0": "2026-04-03",
        "refunded_at_1": "10:00",
    }
    too_much = operator.post(url, {**form, "amount": "1.20"})
    assert too_much.status_code == 200
    assert "more than what is owed back" in too_much.content.decode()
    assert Refund.objects.count() == 0
    assert operator.post(url, {**form, "amount": "1.19"}).status_code == 302
    invoice.refresh_from_db()
    assert (invoice.amount_refunded, invoice.amount_refundable) == (Decimal("1.19"), Decimal("0"))
    refund = Refund.objects.get()
    assert refund.recorded_by.is_superuser
    page = operator.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()
    assert "SEPA-R1" in page
    change = reverse("admin:billing_refund_change", args=[refund.pk])
    assert operator.post(change, {**form, "amount": "0.01"}).status_code == 403  # never edited


def test_a_refusal_when_saving_is_shown_and_nothing_is_saved(operator, monkeypatch):
    """The form's check passed, then the service refused under its locks (as after a change
    made meanwhile): simulated by a form whose check lets everything through."""
    from billing import admin as billing_admin

    invoice = invoices(1)[0]
    cdr = Cdr.objects.get()
    monkeypatch.setattr(billing_admin.services, "credit_note_check", lambda **kwargs: None)
    add = reverse("admin:billing_creditnote_add")
    response = operator.post(add, {"cdr": cdr.pk, "amount_excl_vat": "99", "reason": "x"}, follow=True)
    assert response.status_code == 200
    assert "Not saved: the credit must be positive" in response.content.decode()
    assert not CreditNote.objects.exists()

    monkeypatch.setattr(billing_admin.RefundForm, "check", staticmethod(lambda **kwargs: None))
    form = {"invoice": invoice.pk, "amount": "1.00", "method": "bank_transfer", "reference": "R"}
    form |= {"refunded_at_0": "2026-04-03", "refunded_at_1": "10:00"}
    response = operator.post(reverse("admin:billing_refund_add"), form, follow=True)
    assert "Not saved: the amount is more than what is owed back" in response.content.decode()
    assert not Refund.objects.exists()
    invoice.refresh_from_db()
    assert invoice.amount_refunded == 0


def test_credit_in_full_action(operator):
    invoices(1)
    cdr = Cdr.objects.get()
    operator.post(
        reverse("admin:billing_cdr_changelist"), {"action": "credit_in_full", "_selected_action": [cdr.pk]}
    )
    note = CreditNote.objects.get()
    assert note.total_excl_vat == cdr.total_excl_vat
    for url in (
        reverse("admin:billing_creditnote_changelist"),
        reverse("admin:billing_creditnote_change", args=[note.pk]),
    ):
        page = operator.get(url)
        assert page.status_code == 200, url
        link = f'href="{reverse("v1:credit-note-pdf", args=[note.pk])}"'
        assert link in page.content.decode(), url


def test_a_partial_credit_note_is_issued_from_the_admin(operator):
    invoice = invoices(1)[0]
    cdr = Cdr.objects.get()  # 10 kWh at 0.30: 3.00 + 0.57
    cdr_page = operator.get(reverse("admin:billing_cdr_change", args=[cdr.pk])).content.decode()
    add = reverse("admin:billing_creditnote_add") + f"?cdr={cdr.pk}"
    assert f'href="{add}"' in cdr_page
    form = operator.get(add)
    assert form.status_code == 200
    assert form.context["adminform"].form.initial["cdr"] == str(cdr.pk)

    response = operator.post(add, {"cdr": cdr.pk, "amount_excl_vat": "1.00", "reason": "late start"})
    assert response.status_code == 302, response.content.decode()[:2000]
    note = CreditNote.objects.get()
    assert (note.total_excl_vat, note.total_vat, note.reason) == (
        Decimal("1.00"),
        Decimal("0.19"),
        "late start",
    )
    assert note.created_by.is_superuser
    invoice.refresh_from_db()
    assert invoice.amount_due == Decimal("2.38")
    cdr_page = operator.get(reverse("admin:billing_cdr_change", args=[cdr.pk])).content.decode()
    assert note.number in cdr_page
    # the note itself is read-only
    note_url = reverse("admin:billing_creditnote_change", args=[note.pk])
    assert operator.get(note_url).status_code == 200
    assert operator.post(note_url, {"reason": "changed"}).status_code == 403


@pytest.mark.parametrize(
    ("amount", "refusal"),
    [
        ("2.01", "at most what is left (left: 2.000)"),  # 1.00 of 3.00 credited already
        ("0.005", "in the currency&#x27;s minor unit"),
        ("", None),  # blank: all that is left, allowed
    ],
)
def test_the_admin_refuses_a_credit_note_beyond_what_is_left(operator, amount, refusal):
    invoices(1)
    cdr = Cdr.objects.get()
    services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("1.00"), reason="first")
    add = reverse("admin:billing_creditnote_add")
    response = operator.post(add, {"cdr": cdr.pk, "amount_excl_vat": amount, "reason": "more"})
    if refusal is None:
        assert response.status_code == 302
        assert CreditNote.objects.order_by("pk").last().total_excl_vat == Decimal("2.00")
    else:
        assert response.status_code == 200
        assert refusal in response.content.decode()
        assert CreditNote.objects.count() == 1


def test_the_admin_refuses_a_credit_note_on_a_void_invoice(operator):
    invoice = services.invoice_void(invoice=invoices(1)[0])
    cdr = Cdr.objects.get()
    response = operator.post(
        reverse("admin:billing_creditnote_add"), {"cdr": cdr.pk, "amount_excl_vat": "1", "reason": "x"}
    )
    assert response.status_code == 200
    assert f"invoice {invoice.number} is void" in response.content.decode()
    assert not CreditNote.objects.exists()


def test_cdrs_waiting_in_another_currency_are_listed(operator):
    invoices(1)  # one EUR CDR, invoiced
    org = OrganizationFactory()
    account_for_org(org, currency="JPY")  # its EUR CDR cannot go on a JPY invoice
    waiting = services.cdr_create_for_session(
        session_id=SessionFactory(id_token=IdTokenFactory(organization=org)).pk
    )
    page = operator.get(reverse("admin:billing_cdr_changelist") + "?invoiced=other_currency")
    assert page.status_code == 200
    assert [cdr.pk for cdr in page.context["cl"].result_list] == [waiting.pk]


def test_run_billing_now_queues_the_cycle(operator):
    response = operator.post(reverse("admin:billing_invoice_run_billing"), follow=True)
    assert response.status_code == 200
    assert "Billing run queued" in response.content.decode()


def test_an_assignment_without_its_target_is_refused_on_the_form(operator):
    """A site-scoped assignment without its site: the form checks the model's constraint, so the
    operator sees it on the page (not a server error from the service), and nothing is saved."""
    from billing.models import TariffAssignment

    tariff = default_tariff()
    before = TariffAssignment.objects.count()
    response = operator.post(
        reverse("admin:billing_tariffassignment_add"), {"tariff": tariff.pk, "scope": "site"}
    )
    assert response.status_code == 200
    assert "tariff_assignment_target_matches_scope" in response.content.decode()
    assert TariffAssignment.objects.count() == before
