"""Tariff resolution, CDR creation (idempotent, immutable, snapshot) and the live estimate."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from billing import selectors, services, tasks
from billing.models import Cdr, TariffSnapshot, UnbilledCdr
from billing.tests.factories import (
    ChargePointFactory,
    ConnectorFactory,
    IdTokenFactory,
    OrganizationFactory,
    SessionFactory,
    default_tariff,
    meter_value,
    tariff,
)

pytestmark = pytest.mark.django_db


def test_most_specific_tariff_wins():
    org = OrganizationFactory()
    connector = ConnectorFactory()
    session = SessionFactory(connector=connector, id_token=IdTokenFactory(organization=org))
    cp, site = connector.charge_point, connector.charge_point.site
    steps = [
        ("default", None, tariff("D")),
        ("site", site, tariff("S")),
        ("charge_point", cp, tariff("C")),
        ("connector", connector, tariff("K")),
        ("organization", org, tariff("O")),
    ]
    for scope, target, t in steps:
        services.tariff_assign(tariff=t, scope=scope, target=target)
        assert selectors.tariff_for_session(session=session) == t


def test_other_targets_do_not_leak():
    default = default_tariff(ocpi_id="D")
    services.tariff_assign(tariff=tariff("OTHER"), scope="charge_point", target=ChargePointFactory())
    services.tariff_assign(tariff=tariff("ORG"), scope="organization", target=OrganizationFactory())
    assert selectors.tariff_for_session(session=SessionFactory()) == default


def test_assigning_again_replaces():
    site = ConnectorFactory().charge_point.site
    services.tariff_assign(tariff=tariff("A"), scope="site", target=site)
    second = services.tariff_assign(tariff=tariff("B"), scope="site", target=site)
    assert second.tariff.ocpi_id == "B"
    assert site.pk in [a.site_id for a in type(second).objects.all()]
    assert type(second).objects.filter(scope="site").count() == 1


def test_cdr_priced_with_readings_and_idempotent():
    default_tariff(energy="0.30", vat="19")
    session = SessionFactory(meter_stop_wh=22_300)
    meter_value(session, session.started_at + timedelta(minutes=30), 11_000)
    first = services.cdr_create_for_session(session_id=session.pk)
    second = services.cdr_create_for_session(session_id=session.pk)
    assert first.pk == second.pk
    assert Cdr.objects.count() == 1
    # 22.3 kWh x 0.30 = 6.69; VAT 19 % = 1.2711 → 1.27
    assert (first.total_excl_vat, first.total_vat, first.total_incl_vat) == (
        Decimal("6.69"),
        Decimal("1.27"),
        Decimal("7.96"),
    )
    assert first.energy_wh == 22_300
    assert first.account.user == session.id_token.user
    assert first.tariff_snapshot["elements"][0]["price_components"][0]["price"] == "0.300000"


def test_cdr_keeps_the_engines_pricing_as_written():
    """``pricing`` is stored as ``json`` text on PostgreSQL: it reads back equal to the engine's
    output, keys in the order written (``jsonb`` would have reordered them)."""
    from django.db import connection

    priced_with = default_tariff(energy="0.30", vat="19")
    session = SessionFactory(meter_stop_wh=22_300)
    meter_value(session, session.started_at + timedelta(minutes=30), 11_000)
    cdr = services.cdr_create_for_session(session_id=session.pk)
    session = type(session).objects.get(pk=session.pk)
    expected = services.session_price(session=session, tariff_json=services.tariff_ocpi(tariff=priced_with))
    stored = Cdr.objects.get(pk=cdr.pk).pricing
    assert stored == expected.as_json()
    assert list(stored) == list(expected.as_json())
    period_keys = ["start_date_time", "end_date_time", "dimensions", "components"]
    assert list(stored["charging_periods"][0]) == period_keys
    # Through the ORM too (the write path of tests and admin tools; pricing itself uses COPY).
    written = zero_cdr(SessionFactory(), cdr.snapshot, pricing={"zeta": 1, "alpha": {"y": "2", "b": None}})
    read = Cdr.objects.get(pk=written.pk).pricing
    assert (list(read), list(read["alpha"])) == (["zeta", "alpha"], ["y", "b"])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT data_type FROM information_schema.columns"
                " WHERE table_name = 'billing_cdr' AND column_name IN ('pricing', 'vat_breakdown')"
                " ORDER BY column_name"
            )
            assert [row[0] for row in cursor.fetchall()] == ["text", "text"]


def zero_cdr(session, snapshot, pricing=None) -> Cdr:
    """A CDR of nothing for ``session``, written through the ORM (not the pricing path)."""
    return Cdr.objects.create(
        session=session,
        snapshot=snapshot,
        pricing={} if pricing is None else pricing,
        charge_point_identity="x",
        connector_id=1,
        site_time_zone="UTC",
        id_tag="x",
        started_at=session.started_at,
        stopped_at=session.stopped_at,
        energy_wh=0,
        total_energy_kwh=0,
        total_time_hours=0,
        total_parking_time_hours=0,
        currency="EUR",
        total_excl_vat=0,
        total_vat=0,
        total_incl_vat=0,
    )


@pytest.mark.parametrize("minutes", [0, -1])
def test_a_session_that_stops_at_or_before_its_start_keeps_its_energy(minutes):
    """A charger's clock can put the stop at or before the start: the 10 kWh it delivered are
    still billed (10 x 0.30 = 3.00; VAT 19 % = 0.57), all at one instant, no time."""
    default_tariff(energy="0.30", vat="19")
    session = SessionFactory(stopped_at=datetime(2026, 3, 2, 10, 0, tzinfo=UTC) + timedelta(minutes=minutes))
    cdr = services.cdr_create_for_session(session_id=session.pk)
    assert (cdr.energy_wh, cdr.total_excl_vat, cdr.total_incl_vat) == (
        10_000,
        Decimal("3.00"),
        Decimal("3.57"),
    )
    assert (cdr.total_energy_kwh, cdr.total_time_hours) == (Decimal(10), Decimal(0))


def test_one_cdr_per_session_is_enforced_by_the_database():
    default_tariff()
    cdr = services.cdr_create_for_session(session_id=SessionFactory().pk)
    with pytest.raises(IntegrityError), transaction.atomic():
        zero_cdr(cdr.session, cdr.snapshot)


def test_cdr_rows_cannot_be_updated():
    default_tariff()
    cdr = services.cdr_create_for_session(session_id=SessionFactory().pk)
    with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
        Cdr.objects.filter(pk=cdr.pk).update(total_excl_vat=Decimal("0.01"))


def test_cdr_rows_cannot_be_deleted_even_past_the_orm():
    default_tariff()
    cdr = services.cdr_create_for_session(session_id=SessionFactory().pk)
    with pytest.raises(IntegrityError, match="cannot be deleted"), transaction.atomic():
        Cdr.objects.filter(pk=cdr.pk)._raw_delete(Cdr.objects.db)  # no PROTECT check: the database's
    assert Cdr.objects.filter(pk=cdr.pk).exists()


def test_tariff_change_leaves_existing_cdr_alone():
    t = default_tariff(energy="0.30")
    cdr = services.cdr_create_for_session(session_id=SessionFactory().pk)
    services.tariff_save_ocpi(
        tariff=t,
        data={
            "id": t.ocpi_id,
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 9}]}],
        },
    )
    cdr.refresh_from_db()
    assert cdr.total_excl_vat == Decimal("3.00")
    assert cdr.tariff_snapshot["elements"][0]["price_components"][0]["price"] == "0.300000"
    # The next session is priced with the new version, in a snapshot of its own.
    later = services.cdr_create_for_session(session_id=SessionFactory().pk)
    assert later.snapshot_id != cdr.snapshot_id
    assert later.tariff_snapshot["elements"][0]["price_components"][0]["price"] == "9.000000"


def test_cdrs_of_one_tariff_version_share_one_snapshot():
    default_tariff()
    cdrs = [services.cdr_create_for_session(session_id=SessionFactory().pk) for _ in range(3)]
    assert len({c.snapshot_id for c in cdrs}) == 1
    assert TariffSnapshot.objects.count() == 1


def test_missing_unfinished_or_unpriced_sessions_end_quietly():
    assert services.cdr_create_for_session(session_id=987654) is None
    live = SessionFactory(status="active", stopped_at=None, meter_stop_wh=None)
    default_tariff()
    assert services.cdr_create_for_session(session_id=live.pk) is None
    assert Cdr.objects.count() == 0


def test_no_tariff_no_cdr():
    assert services.cdr_create_for_session(session_id=SessionFactory().pk) is None


def test_organization_token_bills_the_organization():
    default_tariff()
    org = OrganizationFactory()
    cdr = services.cdr_create_for_session(
        session_id=SessionFactory(id_token=IdTokenFactory(organization=org)).pk
    )
    assert cdr.account.organization == org
    assert cdr.account.currency == "EUR"


def test_live_estimate_uses_the_same_pricing():
    default_tariff(energy="0.50", vat="20")
    start = datetime.now(UTC) - timedelta(hours=1)
    session = SessionFactory(status="active", started_at=start, stopped_at=None, meter_stop_wh=None)
    meter_value(session, start + timedelta(minutes=30), 4_000)
    estimate = services.session_cost_estimate(session=session)
    # 4 kWh so far x 0.50 = 2.00; VAT 20 % = 0.40
    assert estimate["energy_kwh"] == "4"
    assert str(estimate["total_excl_vat"].amount) == "2.00"
    assert estimate["total_incl_vat"].as_api() == {"amount": "2.40", "currency": "EUR"}


def test_a_site_with_an_unknown_time_zone_holds_back_only_its_own_sessions():
    from chargers.models import Site

    default_tariff(energy="0.30", vat="19")
    good, bad = SessionFactory(), SessionFactory()
    live = SessionFactory(status="active", stopped_at=None, meter_stop_wh=None, connector=bad.connector)
    Site.objects.filter(pk=bad.connector.charge_point.site_id).update(time_zone="Europe/Berlinn")

    assert services.cdrs_create_for_sessions(session_ids=[good.pk, bad.pk]) == 1
    assert list(Cdr.objects.values_list("session_id", flat=True)) == [good.pk]
    live = type(live).objects.get(pk=live.pk)  # its site as stored now
    assert services.session_cost_estimate(session=live) is None  # no estimate, and no error
    # The admin's site form refuses such a name (the model field's validator).
    with pytest.raises(ValidationError, match="not a known IANA time zone"):
        Site._meta.get_field("time_zone").run_validators("Europe/Berlinn")


def test_estimate_without_tariff_is_none():
    assert services.session_cost_estimate(session=SessionFactory(status="active", stopped_at=None)) is None


def test_batch_pricing_matches_single_pricing_and_skips_priced_sessions():
    default_tariff(energy="0.30", vat="19")
    org = OrganizationFactory()
    services.tariff_assign(tariff=tariff("ORG", energy="0.20"), scope="organization", target=org)
    sessions = [SessionFactory(meter_stop_wh=1_000 * (i + 1)) for i in range(4)]
    sessions.append(SessionFactory(id_token=IdTokenFactory(organization=org)))
    meter_value(sessions[0], sessions[0].started_at + timedelta(minutes=10), 900)
    single = services.cdr_create_for_session(session_id=sessions[0].pk)

    created = services.cdrs_create_for_sessions(session_ids=[s.pk for s in sessions])
    again = services.cdrs_create_for_sessions(session_ids=[s.pk for s in sessions])

    assert (created, again) == (4, 0)
    assert Cdr.objects.count() == 5
    assert Cdr.objects.get(session=sessions[0]).pk == single.pk
    # 2 kWh x 0.30 = 0.60 (+19 % = 0.114 -> 0.11); the organization's contract: 10 kWh x 0.20 = 2.00
    assert Cdr.objects.get(session=sessions[1]).total_incl_vat == Decimal("0.71")
    org_cdr = Cdr.objects.get(session=sessions[4])
    assert (org_cdr.tariff.ocpi_id, org_cdr.total_excl_vat) == ("ORG", Decimal("2.00"))
    assert org_cdr.vat_breakdown == [{"rate": "19", "base": "2.0000", "amount": "0.38"}]


def test_sweep_prices_sessions_whose_message_was_lost():
    default_tariff()
    lost = SessionFactory()
    live = SessionFactory(status="active", stopped_at=None, meter_stop_wh=None)
    assert services.cdr_sweep(stopped_before=datetime.now(UTC)) == 1
    assert services.cdr_sweep(stopped_before=datetime.now(UTC)) == 0
    assert Cdr.objects.filter(session=lost).exists()
    assert not Cdr.objects.filter(session=live).exists()


def test_frequent_sweep_looks_back_a_window_and_the_daily_one_at_everything():
    """The 15-minute beat entry reads the last 48 hours of stops; the daily one every session.
    Both through the real task, as beat sends them."""
    default_tariff()
    now = datetime.now(UTC)
    recent = SessionFactory(started_at=now - timedelta(hours=3))
    old = SessionFactory(started_at=now - timedelta(days=5))
    beat = settings.CELERY_BEAT_SCHEDULE
    assert tasks.cdr_sweep.apply(kwargs=beat["billing.cdr-sweep"].get("kwargs", {})).get() == 1
    assert Cdr.objects.filter(session=recent).exists()
    assert not Cdr.objects.filter(session=old).exists()
    assert tasks.cdr_sweep.apply(kwargs=beat["billing.cdr-sweep-all"].get("kwargs", {})).get() == 1
    assert Cdr.objects.filter(session=old).exists()


def _resolve(session):
    return selectors.tariff_resolver()(
        organization_id=session.id_token.organization_id if session.id_token else None,
        connector_id=session.connector_id,
        charge_point_id=session.charge_point_id,
        site_id=session.charge_point.site_id,
        started_at=session.started_at,
    )


def test_expired_tariff_falls_back_to_the_next_scope():
    default = default_tariff(ocpi_id="D")
    connector = ConnectorFactory()
    expired = tariff("OLD", end_date_time=datetime(2026, 1, 1, tzinfo=UTC))
    services.tariff_assign(tariff=expired, scope="connector", target=connector)
    session = SessionFactory(connector=connector)  # starts 2026-03-02
    assert selectors.tariff_for_session(session=session) == default
    assert _resolve(session) == default
    future = tariff("NEW", start_date_time=datetime(2026, 3, 1, tzinfo=UTC))
    services.tariff_assign(tariff=future, scope="connector", target=connector)
    assert selectors.tariff_for_session(session=session) == future
    assert _resolve(session) == future


def test_inlet_readings_are_not_mixed_into_the_curve():
    default_tariff(energy="1.00", vat="0")
    session = SessionFactory(meter_stop_wh=2_000)
    meter_value(session, session.started_at + timedelta(minutes=30), 1_000)
    from chargers.models import MeterValue

    MeterValue.objects.create(
        charge_point=session.charge_point,
        connector_id=1,
        session=session,
        timestamp=session.started_at + timedelta(minutes=40),
        value=Decimal(900_000),
        location="Inlet",
    )
    assert services.cdr_create_for_session(session_id=session.pk).total_excl_vat == Decimal("2.00")


def test_a_tariff_that_priced_cdrs_cannot_be_deleted():
    from django.db.models import ProtectedError

    t = default_tariff()
    services.cdr_create_for_session(session_id=SessionFactory().pk)
    t.assignments.all().delete()
    with pytest.raises(ProtectedError):
        t.delete()


def test_a_session_priced_meanwhile_is_skipped_and_the_rest_written(monkeypatch):
    """The race the bulk writer must survive: between its read and its write another worker
    stored a CDR for one of its sessions. The direct COPY is refused by the unique key, the
    rows go through ON CONFLICT DO NOTHING, and the other sessions still get their CDRs."""
    default_tariff()
    raced, other = SessionFactory(), SessionFactory()
    rows = []
    real_insert = services._cdrs_insert

    def capture(batch):
        rows.extend(batch)
        return 0

    monkeypatch.setattr(services, "_cdrs_insert", capture)
    services.cdrs_create_for_sessions(session_ids=[raced.pk, other.pk])
    monkeypatch.undo()
    assert len(rows) == 2
    first = services.cdr_create_for_session(session_id=raced.pk)  # the other worker wins the race

    assert real_insert(rows) == 1
    assert Cdr.objects.count() == 2
    assert Cdr.objects.get(session=raced).pk == first.pk
    assert Cdr.objects.filter(session=other).exists()
    # Both write paths (COPY, and INSERT … ON CONFLICT) queued their CDRs for billing, once.
    assert sorted(UnbilledCdr.objects.values_list("cdr_id", flat=True)) == sorted(
        Cdr.objects.values_list("pk", flat=True)
    )


def _work_mem_kb() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'work_mem'")
        return cursor.fetchone()[0]


def test_the_cdr_write_holds_its_new_rows_in_memory_and_hands_the_setting_back(monkeypatch):
    """The CDR triggers read a statement's new rows from a transition table, which spills to a
    temporary file beyond ``work_mem``: the write raises it to twice the rows' size for itself
    (never lowers it) and sets it back after, on both write paths."""
    default_tariff()
    row = [""] * len(services.CDR_COLUMNS)
    big = [(*row[:4], "x" * 1_000_000, *row[5:]) for _ in range(8)]  # 8 MB of JSON text
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '4MB'")  # PostgreSQL's default
        previous = services._transition_memory(cursor, big)
        assert previous == "4096"
        assert _work_mem_kb() >= 2 * 8_000_000 // 1024
        services._work_mem_restore(cursor, previous)
        assert _work_mem_kb() == 4096
        assert services._transition_memory(cursor, big[:1]) is None  # 2 MB asked for: no raise
        assert _work_mem_kb() == 4096

    # Both write paths, from the lowest setting (64 kB), which 40 CDRs (about 1 KB each) exceed.
    sessions = SessionFactory.create_batch(80)
    fresh, late = [], []
    real_insert, real_restore = services._cdrs_insert, services._work_mem_restore
    monkeypatch.setattr(services, "_cdrs_insert", fresh.extend)
    services.cdrs_create_for_sessions(session_ids=[s.pk for s in sessions[:40]])
    monkeypatch.setattr(services, "_cdrs_insert", late.extend)
    services.cdrs_create_for_sessions(session_ids=[s.pk for s in sessions[40:]])
    during = []  # the setting as each write ends

    def restore(cursor, previous):
        during.append(_work_mem_kb())
        real_restore(cursor, previous)

    monkeypatch.setattr(services, "_work_mem_restore", restore)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '64kB'")
        assert real_insert(fresh) == 40  # COPY
        assert _work_mem_kb() == 64
        assert real_insert([*late, fresh[0]]) == 40  # one session priced meanwhile: ON CONFLICT
        assert _work_mem_kb() == 64
    assert during[0] > 64
    assert during[0] >= 2 * sum(len(row[4]) + 512 for row in fresh) // 1024  # twice the JSON and the rest
    assert during[1] >= 2 * sum(len(row[4]) + 512 for row in [*late, fresh[0]]) // 1024


def test_primary_keys_read_past_the_orm_in_the_querysets_order():
    sessions = SessionFactory.create_batch(3)
    ids = sorted(s.pk for s in sessions)
    assert services.primary_keys(type(sessions[0]).objects.order_by("-pk")) == ids[::-1]
    assert services.primary_keys(type(sessions[0]).objects.none()) == []
    assert services.primary_keys(type(sessions[0]).objects.filter(pk__in=[])) == []
