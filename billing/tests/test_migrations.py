"""Migration 0005 moves each CDR's own tariff snapshot into shared, content-addressed rows."""

from datetime import UTC, datetime

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
