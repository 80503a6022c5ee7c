"""The billing HTTP API: OCPI tariffs in and out, assignments, CDRs, invoices, PDFs, payments."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import Membership
from billing import services
from billing.models import Invoice, Tariff
from billing.tests.factories import (
    ConnectorFactory,
    IdTokenFactory,
    OrganizationFactory,
    SessionFactory,
    UserFactory,
    account_for_org,
    default_tariff,
)

pytestmark = pytest.mark.django_db

OCPI_TARIFF = {
    "country_code": "DE",
    "party_id": "EVC",
    "id": "DAY-NIGHT",
    "currency": "EUR",
    "type": "REGULAR",
    "tariff_alt_text": [{"language": "en", "text": "0.40/kWh 17-20h, else 0.30/kWh; 6/h parking"}],
    "min_price": {"excl_vat": 0.5, "incl_vat": 0.6},
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": 0.40, "vat": 19, "step_size": 1}],
            "restrictions": {
                "start_time": "17:00",
                "end_time": "20:00",
                "day_of_week": ["MONDAY", "TUESDAY"],
            },
        },
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.30, "vat": 19, "step_size": 1},
                {"type": "PARKING_TIME", "price": 6, "vat": 19, "step_size": 60},
            ]
        },
    ],
}


@pytest.fixture
def operator() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    return client


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_ocpi_tariff_round_trip(operator):
    created = operator.post("/api/v1/tariffs/", OCPI_TARIFF, format="json")
    assert created.status_code == 201, created.json()
    body = operator.get("/api/v1/tariffs/DAY-NIGHT/").json()
    assert body["id"] == "DAY-NIGHT"
    assert body["min_price"] == {"excl_vat": 0.5, "incl_vat": 0.6}
    assert body["elements"][0]["restrictions"] == {
        "start_time": "17:00",
        "end_time": "20:00",
        "day_of_week": ["MONDAY", "TUESDAY"],
    }
    assert body["elements"][1]["price_components"] == [
        {"type": "ENERGY", "price": 0.3, "step_size": 1, "vat": 19.0},
        {"type": "PARKING_TIME", "price": 6.0, "step_size": 60, "vat": 19.0},
    ]
    assert "last_updated" in body
    # what came out goes back in unchanged
    again = operator.put("/api/v1/tariffs/DAY-NIGHT/", body, format="json")
    assert again.status_code == 200
    assert {k: v for k, v in again.json().items() if k != "last_updated"} == {
        k: v for k, v in body.items() if k != "last_updated"
    }


def test_prices_keep_every_decimal(operator):
    data = {
        **OCPI_TARIFF,
        "id": "EXACT",
        "elements": [{"price_components": [{"type": "ENERGY", "price": 0.123456}]}],
    }
    assert operator.post("/api/v1/tariffs/", data, format="json").status_code == 201
    assert Tariff.objects.get(ocpi_id="EXACT").elements.get().energy_price == Decimal("0.123456")


def test_put_creates_then_replaces_and_post_twice_conflicts(operator):
    data = {**OCPI_TARIFF, "id": "PUT-ME"}
    assert operator.put("/api/v1/tariffs/PUT-ME/", data, format="json").status_code == 201
    assert operator.post("/api/v1/tariffs/", data, format="json").status_code == 409
    data["elements"] = [{"price_components": [{"type": "FLAT", "price": 2}]}]
    assert operator.put("/api/v1/tariffs/PUT-ME/", data, format="json").status_code == 200
    assert Tariff.objects.get(ocpi_id="PUT-ME").elements.count() == 1
    mismatch = operator.put("/api/v1/tariffs/PUT-ME/", {**data, "id": "OTHER"}, format="json")
    assert mismatch.status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "XYZ"}, "currency"),
        ({"elements": []}, "elements"),
        (
            {"elements": [{"price_components": [{"type": "ENERGY", "price": -1}]}]},
            "elements[0].price_components[0].price",
        ),
        (
            {
                "elements": [
                    {
                        "price_components": [{"type": "ENERGY", "price": 1}],
                        "restrictions": {"start_time": "7am"},
                    }
                ]
            },
            "elements[0].restrictions.start_time",
        ),
        (
            {"elements": [{"price_components": [{"type": "ENERGY", "price": 0.1234567}]}]},
            "elements[0].price_components[0].price",
        ),
        ({"min_price": {"excl_vat": 1, "incl_vat": "lots"}}, "min_price.incl_vat"),
        # more digits than a decimal context holds: refused, not a 500 from quantize()
        (
            {"elements": [{"price_components": [{"type": "ENERGY", "price": "1" * 23 + ".1234567"}]}]},
            "elements[0].price_components[0].price",
        ),
        ({"max_price": {"excl_vat": "1E+30"}}, "max_price.excl_vat"),
        ({"tariff_alt_url": "https://example.com/" + "x" * 300}, "tariff_alt_url"),  # column: 200
        # a tariff valid for no instant would price nothing: its sessions would get no CDR
        (
            {"start_date_time": "2026-05-01T00:00:00Z", "end_date_time": "2026-04-01T00:00:00Z"},
            "end_date_time",
        ),
        (
            {
                "elements": [
                    {
                        "price_components": [{"type": "ENERGY", "price": 1}],
                        "restrictions": {"min_current": 32, "max_current": 16},
                    }
                ]
            },
            "elements[0].restrictions.max_current",
        ),
    ],
)
def test_bad_tariffs_get_field_details(operator, change, field):
    response = operator.post("/api/v1/tariffs/", {**OCPI_TARIFF, "id": "BAD", **change}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert field in body["error"]["details"]
    assert not Tariff.objects.filter(ocpi_id="BAD").exists()


def test_malformed_json_is_a_400(operator):
    response = operator.post("/api/v1/tariffs/", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_a_tariff_created_between_the_check_and_the_insert_is_a_409(operator, monkeypatch):
    """Two POSTs of a new id at once: the second's insert meets the unique id, not a 500."""
    real = services.tariff_save_ocpi

    def racing(*, data, tariff=None):
        if tariff is None:  # the other request commits its tariff just before ours is inserted
            real(data={**data, "elements": [{"price_components": [{"type": "FLAT", "price": 1}]}]})
        return real(data=data, tariff=tariff)

    monkeypatch.setattr(services, "tariff_save_ocpi", racing)
    response = operator.post("/api/v1/tariffs/", {**OCPI_TARIFF, "id": "RACE"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "tariff_exists"
    put = operator.put("/api/v1/tariffs/RACE-2/", {**OCPI_TARIFF, "id": "RACE-2"}, format="json")
    assert put.status_code == 409


def test_json_nested_beyond_reason_is_a_400(operator):
    body = "[" * 100_000 + "]" * 100_000
    response = operator.post("/api/v1/tariffs/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_drivers_read_tariffs_but_cannot_write():
    driver = client_for(UserFactory())
    assert driver.get("/api/v1/tariffs/").status_code == 200
    assert driver.post("/api/v1/tariffs/", OCPI_TARIFF, format="json").status_code == 403
    assert driver.post("/api/v1/tariff-assignments/", {}, format="json").status_code == 403


def test_assign_a_tariff_to_a_connector_prices_its_sessions(operator):
    default_tariff(ocpi_id="DEFAULT", energy="0.30")
    operator.post("/api/v1/tariffs/", {**OCPI_TARIFF, "id": "FAST"}, format="json")
    connector = ConnectorFactory()
    response = operator.post(
        "/api/v1/tariff-assignments/",
        {"tariff": "FAST", "scope": "connector", "target_id": connector.pk},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["target_id"] == connector.pk
    session = SessionFactory(connector=connector)
    assert services.cdr_create_for_session(session_id=session.pk).tariff.ocpi_id == "FAST"
    missing = operator.post(
        "/api/v1/tariff-assignments/", {"tariff": "FAST", "scope": "site", "target_id": 999999}, format="json"
    )
    assert missing.status_code == 404


def billed_org():
    default_tariff(energy="0.30", vat="19")
    org = OrganizationFactory()
    account_for_org(org)
    for wh in (10_000, 5_000):
        session = SessionFactory(id_token=IdTokenFactory(organization=org), meter_stop_wh=wh)
        services.cdr_create_for_session(session_id=session.pk)
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))
    return org


def test_cdrs_and_invoices_are_scoped_and_money_is_decimal_strings(django_assert_max_num_queries):
    org = billed_org()
    other = billed_org()
    admin = UserFactory()
    Membership.objects.create(user=admin, organization=org, role="admin")
    member = UserFactory()
    Membership.objects.create(user=member, organization=org, role="driver")
    client = client_for(admin)

    cdrs = client.get("/api/v1/cdrs/").json()
    assert cdrs["count"] == 2
    assert {c["total_incl_vat"]["amount"] for c in cdrs["results"]} == {"3.57", "1.79"}
    assert cdrs["results"][0]["invoice"] == "INV-2026-000001"
    invoices = client.get("/api/v1/invoices/").json()["results"]
    assert len(invoices) == 1
    assert invoices[0]["total_incl_vat"] == {"amount": "5.36", "currency": "EUR"}
    assert invoices[0]["pdf_url"].endswith(f"/api/v1/invoices/{invoices[0]['id']}/pdf/")
    other_invoice = Invoice.objects.get(account__organization=other)
    assert client.get(f"/api/v1/invoices/{other_invoice.pk}/").status_code == 404
    assert client_for(member).get("/api/v1/invoices/").json()["count"] == 0
    # the list costs the same number of queries however many rows (auth is forced: no user
    # query): the caller's memberships (scoping), count, page, and the invoices' lines
    with django_assert_max_num_queries(4):
        client.get("/api/v1/invoices/")
    with django_assert_max_num_queries(3):
        client.get("/api/v1/cdrs/")


def test_cdr_filters():
    billed_org()
    client = client_for(UserFactory(is_staff=True))
    assert client.get("/api/v1/cdrs/?invoiced=true").json()["count"] == 2
    assert client.get("/api/v1/cdrs/?invoiced=false").json()["count"] == 0
    assert client.get("/api/v1/cdrs/?stopped_after=2026-03-03T00:00:00Z").json()["count"] == 0


def test_invoice_pdf(operator, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    billed_org()
    invoice = Invoice.objects.get()
    response = operator.get(f"/api/v1/invoices/{invoice.pk}/pdf/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    content = b"".join(response.streaming_content)
    assert content.startswith(b"%PDF")
    invoice.refresh_from_db()
    assert invoice.pdf.name == "invoices/2026/INV-2026-000001.pdf"
    assert (tmp_path / invoice.pdf.name).exists()


def test_invoice_pdf_of_an_account_named_with_markup(operator, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    org = billed_org()
    org.billing_account.__class__.objects.filter(pk=org.billing_account.pk).update(name="Fleet <B> Nord & Co")
    invoice = Invoice.objects.get()
    response = operator.get(f"/api/v1/invoices/{invoice.pk}/pdf/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF")


def test_billing_account_time_zone_must_be_known(operator):
    account = billed_org().billing_account
    url = f"/api/v1/billing-accounts/{account.pk}/"
    response = operator.patch(url, {"time_zone": "Mars/Olympus_Mons"}, format="json")
    assert response.status_code == 400
    assert "time_zone" in response.json()["error"]["details"]
    account.refresh_from_db()
    assert account.time_zone == "UTC"
    assert operator.patch(url, {"time_zone": "Europe/Berlin"}, format="json").status_code == 200


def test_payments_through_the_api(operator):
    billed_org()
    invoice = Invoice.objects.get()  # 5.36
    url = f"/api/v1/invoices/{invoice.pk}/payments/"
    partial = operator.post(url, {"amount": "2.00", "reference": "SEPA-1"}, format="json")
    assert partial.status_code == 201
    assert partial.json()["amount"] == {"amount": "2.00", "currency": "EUR"}
    too_much = operator.post(url, {"amount": "3.37", "reference": "SEPA-2"}, format="json")
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "payment_refused"
    assert operator.post(url, {"amount": "3.36", "reference": "SEPA-2"}, format="json").status_code == 201
    body = operator.get(f"/api/v1/invoices/{invoice.pk}/").json()
    assert (body["status"], body["amount_due"]["amount"]) == ("paid", "0.00")
    void = operator.post(f"/api/v1/invoices/{invoice.pk}/void/")
    assert void.status_code == 409
    assert void.json()["error"]["code"] == "invalid_transition"
    assert operator.get("/api/v1/payments/").json()["count"] == 2


def test_refunds_through_the_api(operator):
    org = billed_org()
    invoice = Invoice.objects.get()  # 5.36, paid in full, then 1.00 + 0.19 credited: 1.19 owed back
    services.invoice_mark_paid(invoice=invoice)
    services.credit_note_create(cdr=invoice.lines.first().cdr, amount_excl_vat=Decimal("1.00"), reason="x")
    url = f"/api/v1/invoices/{invoice.pk}/refunds/"
    assert operator.get(f"/api/v1/invoices/{invoice.pk}/").json()["amount_refundable"]["amount"] == "1.19"
    too_much = operator.post(url, {"amount": "1.20", "reference": "R-1"}, format="json")
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "refund_refused"
    assert too_much.json()["error"]["details"] == {"amount_refundable": "1.190"}
    done = operator.post(url, {"amount": "1.19", "reference": "R-1", "method": "card"}, format="json")
    assert done.status_code == 201
    assert (done.json()["amount"], done.json()["method"]) == ({"amount": "1.19", "currency": "EUR"}, "card")
    body = operator.get(f"/api/v1/invoices/{invoice.pk}/").json()
    assert (body["status"], body["amount_refunded"]["amount"], body["amount_refundable"]["amount"]) == (
        "paid",
        "1.19",
        "0.00",
    )
    owner = UserFactory()
    Membership.objects.create(user=owner, organization=org, role="owner")
    customer = client_for(owner)
    assert [r["reference"] for r in customer.get(url).json()] == ["R-1"]
    assert customer.post(url, {"amount": "0.01", "reference": "R-2"}, format="json").status_code == 403
    stranger = UserFactory()
    Membership.objects.create(user=stranger, organization=billed_org(), role="owner")
    assert client_for(stranger).get(url).status_code == 404


def test_drivers_cannot_record_payments_or_run_billing():
    org = billed_org()
    admin = UserFactory()
    Membership.objects.create(user=admin, organization=org, role="owner")
    client = client_for(admin)
    invoice = Invoice.objects.get()
    assert (
        client.post(f"/api/v1/invoices/{invoice.pk}/payments/", {"amount": "1", "reference": "x"}).status_code
        == 403
    )
    assert client.post("/api/v1/billing-runs/").status_code == 403


def test_credit_note_through_the_api(operator):
    billed_org()
    cdr = Invoice.objects.get().lines.first().cdr
    response = operator.post("/api/v1/credit-notes/", {"cdr": cdr.pk, "reason": "meter fault"}, format="json")
    assert response.status_code == 201
    assert response.json()["total_excl_vat"]["amount"] == str(cdr.total_excl_vat.quantize(Decimal("0.01")))
    again = operator.post("/api/v1/credit-notes/", {"cdr": cdr.pk, "reason": "again"}, format="json")
    assert again.status_code == 409


def test_credit_note_pdf_for_its_organization_only(operator, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    org = billed_org()
    cdr = Invoice.objects.get(account__organization=org).lines.first().cdr
    created = operator.post("/api/v1/credit-notes/", {"cdr": cdr.pk, "reason": "fault"}, format="json").json()
    assert created["pdf_url"].endswith(f"/api/v1/credit-notes/{created['id']}/pdf/")
    member = UserFactory()
    Membership.objects.create(user=member, organization=org, role="admin")
    response = client_for(member).get(created["pdf_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert f'filename="{created["number"]}.pdf"' in response["Content-Disposition"]
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    year = created["number"].split("-")[1]
    assert (tmp_path / "credit-notes" / year / f"{created['number']}.pdf").exists()
    stranger = UserFactory()
    Membership.objects.create(user=stranger, organization=billed_org(), role="admin")
    assert client_for(stranger).get(created["pdf_url"]).status_code == 404


def test_partner_api_key_pulls_its_organizations_cdrs_within_its_scopes():
    from accounts.scoping import Actor
    from accounts.services import api_key_create

    org = billed_org()
    billed_org()  # another tenant's CDRs
    staff = Actor.for_user(UserFactory(is_staff=True))
    _, billing_key = api_key_create(actor=staff, organization=org, name="erp", scopes=["billing:read"])
    _, chargers_key = api_key_create(actor=staff, organization=org, name="map", scopes=["chargers:read"])
    partner = APIClient()
    partner.credentials(HTTP_AUTHORIZATION=f"Api-Key {billing_key}")
    cdrs = partner.get("/api/v1/cdrs/")
    assert cdrs.status_code == 200
    assert cdrs.json()["count"] == 2
    assert {c["account"] for c in cdrs.json()["results"]} == {org.billing_account.pk}
    assert partner.post("/api/v1/billing-runs/").status_code == 403  # read scope, and not an operator
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {chargers_key}")
    assert other.get("/api/v1/cdrs/").status_code == 403


def test_members_of_an_operator_organization_are_operators():
    from accounts.models import Organization

    billed_org()
    crew = UserFactory()
    Membership.objects.create(
        user=crew, organization=OrganizationFactory(kind=Organization.Kind.OPERATOR), role="member"
    )
    client = client_for(crew)
    assert client.get("/api/v1/invoices/").json()["count"] == 1
    assert client.post("/api/v1/tariffs/", {**OCPI_TARIFF, "id": "CREW"}, format="json").status_code == 201
