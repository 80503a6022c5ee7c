"""Migration 0005 moves each CDR's own tariff snapshot into shared, content-addressed rows."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("billing", "0004_cdr_tariff_protect")]
AFTER = [("billing", "0005_tariff_snapshot")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_existing_cdrs_share_one_snapshot_per_distinct_tariff_json():
    old = _migrate(BEFORE)
    try:
        Site = old.get_model("chargers", "Site")
        ChargePoint = old.get_model("chargers", "ChargePoint")
        Connector = old.get_model("chargers", "Connector")
        Session = old.get_model("chargers", "ChargingSession")
        Cdr = old.get_model("billing", "Cdr")
        site = Site.objects.create(name="S", country="DE", latitude=0, longitude=0)
        point = ChargePoint.objects.create(site=site, identity="MIG-1")
        connector = Connector.objects.create(charge_point=point, connector_id=1)
        at = datetime(2026, 3, 2, 10, tzinfo=UTC)
        snapshots = [{"id": "A", "v": 1}, {"v": 1, "id": "A"}, {"id": "B", "v": 2}]  # first two: same JSON
        for i, snapshot in enumerate(snapshots):
            session = Session.objects.create(
                charge_point=point,
                connector=connector,
                id_tag="T",
                started_at=at,
                meter_start_wh=i,
                status="completed",
                stopped_at=at,
                meter_stop_wh=i,
            )
            Cdr.objects.create(
                session=session,
                tariff_snapshot=snapshot,
                pricing={},
                charge_point_identity="MIG-1",
                connector_id=1,
                site_time_zone="UTC",
                id_tag="T",
                started_at=at,
                stopped_at=at,
                energy_wh=0,
                total_energy_kwh=0,
                total_time_hours=0,
                total_parking_time_hours=0,
                currency="EUR",
                total_excl_vat=0,
                total_vat=0,
                total_incl_vat=0,
            )
        new = _migrate(AFTER)
        cdrs = list(new.get_model("billing", "Cdr").objects.order_by("pk").select_related("snapshot"))
        assert [c.snapshot.data for c in cdrs] == [
            {"id": "A", "v": 1},
            {"id": "A", "v": 1},
            {"id": "B", "v": 2},
        ]
        assert cdrs[0].snapshot_id == cdrs[1].snapshot_id != cdrs[2].snapshot_id
        assert new.get_model("billing", "TariffSnapshot").objects.count() == 2
        # The immutability trigger is back on after the move.
        with connection.cursor() as cursor:
            cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'billing_cdr_immutable'")
            assert cursor.fetchone() == ("O",)
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_0015_backfills_credits_from_what_the_earlier_code_left():
    """Notes the earlier code left: one never attached to the invoice its CDR landed on, one that
    credits an open invoice in full, and two whose separately rounded VAT adds up to a cent more
    than the invoice. 0015 attaches, sums (at most the total) and settles."""
    from billing import services
    from billing.tests.factories import (
        IdTokenFactory,
        OrganizationFactory,
        SessionFactory,
        account_for_org,
        default_tariff,
    )

    default_tariff(energy="0.30", vat="19")
    for _ in range(3):
        org = OrganizationFactory()
        account_for_org(org)
        session = SessionFactory(id_token=IdTokenFactory(organization=org), meter_stop_wh=10_000)
        services.cdr_create_for_session(session_id=session.pk)  # 3.00 + 0.57 = 3.57
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC), render_pdfs=False)
    try:
        old = _migrate([("billing", "0014_time_zone_validated")])
        Invoice = old.get_model("billing", "Invoice")
        CreditNote = old.get_model("billing", "CreditNote")
        unattached, full, over = Invoice.objects.order_by("pk")
        notes = [
            (unattached, None, "1.00", "0.19"),
            (full, full, "3.00", "0.57"),
            (over, over, "3.00", "0.57"),
            (over, over, "0.00", "0.01"),  # VAT rounded on its own: 3.58 credited of 3.57
        ]
        for number, (invoice, named, excl, vat) in enumerate(notes, start=1):
            CreditNote.objects.create(
                number=f"CN-2026-{number:06d}",
                cdr_id=invoice.lines.get().cdr_id,
                invoice=named,
                reason="earlier code",
                currency="EUR",
                total_excl_vat=Decimal(excl) or Decimal("0.001"),
                total_vat=Decimal(vat) - (Decimal("0.001") if excl == "0.00" else 0),
                total_incl_vat=Decimal(excl) + Decimal(vat),
            )
        new = _migrate([("billing", "0015_invoice_amount_credited")])
        invoices = list(new.get_model("billing", "Invoice").objects.order_by("pk"))
        states = [(i.amount_credited, i.status, i.paid_at is not None) for i in invoices]
        assert states == [
            (Decimal("1.19"), "open", False),
            (Decimal("3.57"), "paid", True),
            (Decimal("3.57"), "paid", True),  # capped at the total
        ]
        first_note = new.get_model("billing", "CreditNote").objects.get(number="CN-2026-000001")
        assert first_note.invoice_id == invoices[0].pk
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
