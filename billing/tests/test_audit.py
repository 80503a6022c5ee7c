"""Operator changes to money through the API land in the audit log, with before and after."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import AuditEntry, User
from billing import services
from billing.tests.test_invoicing import issued_invoice

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return User.objects.create_user(email="billing-ops@example.com", password="x", is_staff=True)


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def ocpi_tariff(price: str) -> dict:
    return {
        "id": "AUD-1",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": price, "vat": 19, "step_size": 1}]}],
    }


def test_tariff_create_and_update_are_audited(operator):
    client = client_for(operator)
    assert client.post("/api/v1/tariffs/", ocpi_tariff("0.30"), format="json").status_code == 201
    assert client.put("/api/v1/tariffs/AUD-1/", ocpi_tariff("0.35"), format="json").status_code == 200
    created, updated = AuditEntry.objects.filter(action__startswith="tariff.").order_by("pk")
    assert (created.action, updated.action) == ("tariff.create", "tariff.update")
    assert updated.actor == operator
    assert updated.source == "api"
    assert updated.before is not None
    assert updated.after is not None


def test_recording_a_payment_is_audited(operator):
    invoice = issued_invoice()  # 3.57 incl. VAT
    paid = client_for(operator).post(
        f"/api/v1/invoices/{invoice.pk}/payments/", {"amount": "1.00", "reference": "bank-9"}, format="json"
    )
    assert paid.status_code == 201, paid.content
    entry = AuditEntry.objects.get(action="invoice.payment")
    assert entry.object_id == str(invoice.pk)
    assert Decimal(entry.before["amount_paid"]) == 0
    assert Decimal(entry.after["amount_paid"]) == Decimal("1.00")


def test_recording_a_refund_is_audited(operator):
    invoice = services.invoice_mark_paid(invoice=issued_invoice())  # 3.57 paid
    services.credit_note_create(cdr=invoice.lines.get().cdr, amount_excl_vat=Decimal("1.00"), reason="x")
    refunded = client_for(operator).post(
        f"/api/v1/invoices/{invoice.pk}/refunds/", {"amount": "1.19", "reference": "sepa-r"}, format="json"
    )
    assert refunded.status_code == 201, refunded.content
    entry = AuditEntry.objects.get(action="invoice.refund")
    assert entry.object_id == str(invoice.pk)
    assert Decimal(entry.before["amount_refunded"]) == 0
    assert Decimal(entry.after["amount_refunded"]) == Decimal("1.19")


def test_voiding_an_invoice_is_audited(operator):
    invoice = issued_invoice()
    response = client_for(operator).post(f"/api/v1/invoices/{invoice.pk}/void/")
    assert response.status_code == 200, response.content
    entry = AuditEntry.objects.get(action="invoice.void")
    assert entry.actor == operator
    assert (entry.before["status"], entry.after["status"]) == ("open", "void")
