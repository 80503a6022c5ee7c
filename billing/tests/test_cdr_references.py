"""A CDR's session, account, tariff and snapshot are checked by the database once per statement
(migration 0010), with the guarantees the foreign keys gave: no CDR names a missing row, no row
a CDR names can be deleted, and an insert racing a delete cannot leave a CDR naming nothing.

The embedded SQLite quick start gets the same rules from row triggers; that its migrations
leave every billing trigger in place is checked by migrating a SQLite file in a subprocess.
"""

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from billing import services
from billing.models import BillingAccount, Cdr, Tariff, TariffSnapshot
from billing.tests.factories import SessionFactory, default_tariff
from chargers.models import ChargingSession
from conftest import test_database_url

COPY_COLUMNS = ", ".join(services.CDR_COLUMNS)


def cdr_copy_sql(**replace: str) -> str:
    """``INSERT`` of a new CDR row copied from CDR ``%(template)s``, some columns replaced by SQL."""
    values = ", ".join(replace.get(column, column) for column in services.CDR_COLUMNS)
    return (
        f"INSERT INTO billing_cdr ({COPY_COLUMNS}) SELECT {values}"  # noqa: S608 - our columns
        " FROM billing_cdr WHERE id = %(template)s"
    )


@pytest.fixture
def cdr(db) -> Cdr:
    default_tariff()
    return services.cdr_create_for_session(session_id=SessionFactory().pk)


@pytest.mark.parametrize(
    ("column", "what"),
    [
        ("session_id", "session"),
        ("account_id", "billing account"),
        ("tariff_id", "tariff"),
        ("snapshot_id", "tariff snapshot"),
    ],
)
def test_a_cdr_naming_a_missing_row_is_refused(cdr, column, what):
    fresh = SessionFactory()  # a real session for the new row, unless the session is the test
    replace = {"session_id": str(fresh.pk), column: "-1"}
    with (
        pytest.raises(IntegrityError, match=f"names {what} -1, which does not exist"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(cdr_copy_sql(**replace), {"template": cdr.pk})
    assert not Cdr.objects.filter(session=fresh).exists()


def test_a_cdr_naming_existing_rows_goes_in_and_joins_the_queue(cdr):
    fresh = SessionFactory()
    with connection.cursor() as cursor:
        cursor.execute(cdr_copy_sql(session_id=str(fresh.pk)), {"template": cdr.pk})
    copy = Cdr.objects.get(session=fresh)
    names = ("account_id", "tariff_id", "snapshot_id")
    assert [getattr(copy, n) for n in names] == [getattr(cdr, n) for n in names]
    assert copy.unbilled.account_id == cdr.account_id


@pytest.mark.parametrize("model", [ChargingSession, BillingAccount, Tariff, TariffSnapshot])
def test_a_row_a_cdr_names_cannot_be_deleted_even_past_the_orm(cdr, model):
    parent = {
        ChargingSession: cdr.session_id,
        BillingAccount: cdr.account_id,
        Tariff: cdr.tariff_id,
        TariffSnapshot: cdr.snapshot_id,
    }[model]
    with pytest.raises(IntegrityError, match="cannot be deleted: a CDR names it"), transaction.atomic():
        model.objects.filter(pk=parent)._raw_delete(model.objects.db)  # no PROTECT check: the database's
    assert model.objects.filter(pk=parent).exists()


def test_a_row_no_cdr_names_can_still_be_deleted(cdr):
    session = SessionFactory()
    snapshot = TariffSnapshot.objects.create(digest="0" * 64, data={})
    ChargingSession.objects.filter(pk=session.pk)._raw_delete(ChargingSession.objects.db)
    TariffSnapshot.objects.filter(pk=snapshot.pk)._raw_delete(TariffSnapshot.objects.db)
    assert not ChargingSession.objects.filter(pk=session.pk).exists()
    assert not TariffSnapshot.objects.filter(pk=snapshot.pk).exists()


def _blocked(probe: psycopg.Connection) -> bool:
    with probe.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def _wait_blocked(probe: psycopg.Connection) -> None:
    for _ in range(300):
        if _blocked(probe):
            return
        threading.Event().wait(0.05)
    raise AssertionError("the second transaction never waited for the first")


def _while_held(held: psycopg.Connection, attempt, wait_for=_wait_blocked):
    """``attempt()`` in a thread, while ``held``'s open transaction holds what it needs: once
    ``wait_for`` sees it waiting, ``held`` commits. Returns what ``attempt`` returned, or the
    database error it raised."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(attempt())
        except psycopg.Error as error:  # handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    with psycopg.connect(test_database_url(), autocommit=True) as probe:
        wait_for(probe)
    held.commit()
    thread.join(30)
    assert not thread.is_alive(), "the waiting side never ended"
    assert outcome, "the waiting side raised (see the log above)"
    return outcome[0]


def _race(first_sql: tuple, second_sql: tuple, first: psycopg.Connection, second: psycopg.Connection):
    """``first`` runs its statement and holds its transaction; ``second``'s statement, in a thread,
    must wait for it; ``first`` commits. Returns what ``second``'s statement raised (or None)."""
    first.execute(*first_sql)

    def second_statement() -> None:
        second.execute(*second_sql)

    outcome = _while_held(first, second_statement)
    second.rollback()
    return outcome


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["insert", "delete"])
def test_a_tariff_delete_racing_a_cdr_insert_is_refused_whichever_starts_first(first):
    default_tariff()
    template = services.cdr_create_for_session(session_id=SessionFactory().pk)
    bare = Tariff.objects.create(ocpi_id="RACE", currency="EUR")  # no elements: deletable
    session = SessionFactory()
    insert = (cdr_copy_sql(session_id=str(session.pk), tariff_id=str(bare.pk)), {"template": template.pk})
    delete = ("DELETE FROM billing_tariff WHERE id = %s", [bare.pk])
    with psycopg.connect(test_database_url()) as inserter, psycopg.connect(test_database_url()) as deleter:
        if first == "insert":
            refused = _race(insert, delete, inserter, deleter)
            assert isinstance(refused, psycopg.errors.ForeignKeyViolation), refused
            assert "cannot be deleted: a CDR names it" in str(refused)
            assert Cdr.objects.filter(session=session, tariff=bare).exists()
        else:
            refused = _race(delete, insert, deleter, inserter)
            assert isinstance(refused, psycopg.errors.ForeignKeyViolation), refused
            assert f"names tariff {bare.pk}, which does not exist" in str(refused)
            assert not Tariff.objects.filter(pk=bare.pk).exists()
            assert not Cdr.objects.filter(session=session).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_delete_that_cannot_take_the_cdr_table_soon_is_refused_after_a_short_wait():
    """A vacuum holds billing_cdr (SHARE UPDATE EXCLUSIVE, which SHARE waits for): the delete
    waits a few seconds, then is refused with "try again"; once the table is free it goes."""
    bare = Tariff.objects.create(ocpi_id="WAIT", currency="EUR")  # no CDR names it
    with (
        psycopg.connect(test_database_url()) as vacuum,
        psycopg.connect(test_database_url(), autocommit=True) as deleter,
    ):
        vacuum.execute("LOCK TABLE billing_cdr IN SHARE UPDATE EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable, match="cannot be deleted now"):
            deleter.execute("DELETE FROM billing_tariff WHERE id = %s", [bare.pk])
        waited = time.monotonic() - started
        vacuum.rollback()
        deleter.execute("DELETE FROM billing_tariff WHERE id = %s", [bare.pk])  # free again: goes
    assert 4 < waited < 30
    assert not Tariff.objects.filter(pk=bare.pk).exists()


@pytest.mark.slow
def test_sqlite_migrations_leave_every_billing_trigger_in_place(tmp_path: Path):
    """Table rebuilds on SQLite drop a table's triggers; the quick start must still have them all."""
    database = tmp_path / "quickstart.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        env=env,
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    with sqlite3.connect(database) as db:
        triggers = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert triggers >= {
            "billing_cdr_unbilled",
            "billing_line_billed",
            "billing_line_unbilled",
            "billing_invoice_never_deleted",
            "billing_cdr_references",
            "billing_cdr_named_chargers_chargingsession",
            "billing_cdr_named_billing_billingaccount",
            "billing_cdr_named_billing_tariff",
            "billing_cdr_named_billing_tariffsnapshot",
        }
        # Behaviour, not only names: an invoice line takes its CDR out of the unbilled queue.
        db.execute(
            "INSERT INTO billing_unbilledcdr (cdr_id, account_id, currency, stopped_at, total_excl_vat,"
            " total_vat, total_incl_vat) VALUES (7, 1, 'EUR', '2026-10-01 10:00:00', 1, 0.19, 1.19)"
        )
        db.execute(
            "INSERT INTO billing_invoiceline (invoice_id, cdr_id, total_excl_vat, total_vat, total_incl_vat)"
            " VALUES (1, 7, 1, 0.19, 1.19)"
        )
        assert db.execute("SELECT count(*) FROM billing_unbilledcdr").fetchone() == (0,)
        columns = {
            "session_id": 99, "snapshot_id": 99, "pricing": "{}", "charge_point_identity": "x",
            "connector_id": 1, "site_time_zone": "UTC", "id_tag": "x", "started_at": "2026-10-01",
            "stopped_at": "2026-10-01", "energy_wh": 0, "total_energy_kwh": 0, "total_time_hours": 0,
            "total_parking_time_hours": 0, "currency": "EUR", "total_excl_vat": 0, "total_vat": 0,
            "total_incl_vat": 0, "vat_breakdown": "[]", "created_at": "2026-10-01",
        }  # fmt: skip
        insert = f"INSERT INTO billing_cdr ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
        with pytest.raises(sqlite3.IntegrityError, match="must name an existing session"):
            db.execute(insert, list(columns.values()))


# A script run on a fresh, migrated SQLite file (the quick start's database): a 0.30/kWh,
# 19 % default tariff and one organization with its account; the script prints its outcome as
# JSON on its last line.
SQLITE_PREAMBLE = """
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from billing import services
from billing.models import Cdr, Invoice, UnbilledCdr
from billing.tests.factories import (
    IdTokenFactory, OrganizationFactory, SessionFactory, account_for_org, default_tariff,
)
default_tariff(energy="0.30", vat="19")
org = OrganizationFactory()
account_for_org(org)
"""


def run_on_sqlite(script: str, tmp_path: Path) -> dict:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'quickstart.sqlite3'}"}
    done = subprocess.run(
        [sys.executable, "-c", SQLITE_PREAMBLE + script],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


SQLITE_TWO_CYCLES = """
for k in range(3):
    session = SessionFactory(
        id_token=IdTokenFactory(organization=org), meter_stop_wh=10_000 * (k + 1),
        started_at=datetime(2026, 3, 2, 10 + k, tzinfo=UTC),
        stopped_at=datetime(2026, 3, 2, 11 + k, tzinfo=UTC),
    )
    services.cdr_create_for_session(session_id=session.pk)
first = services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC), render_pdfs=False)
queued = UnbilledCdr.objects.count()
second = services.billing_cycle_run(now=datetime(2026, 5, 1, 1, tzinfo=UTC), render_pdfs=False)
invoice = Invoice.objects.get()
print(json.dumps({
    "first": len(first.invoices_created), "queued_after": queued, "second": len(second.invoices_created),
    "totals": [str(invoice.total_excl_vat), str(invoice.total_vat), str(invoice.total_incl_vat)],
    "vat": invoice.vat_breakdown,
}))
"""


@pytest.mark.slow
def test_sqlite_quick_start_bills_once_and_empties_the_queue(tmp_path: Path):
    """The embedded quick start's billing cycle on SQLite: one invoice, equal to its CDRs, and a
    second cycle finds nothing left (it used to fail: billed CDRs stayed in the queue)."""
    outcome = run_on_sqlite(SQLITE_TWO_CYCLES, tmp_path)
    # 10 + 20 + 30 kWh x 0.30 = 18.00; VAT per CDR 0.57 + 1.14 + 1.71 = 3.42
    assert outcome == {
        "first": 1,
        "queued_after": 0,
        "second": 0,
        "totals": ["18.000", "3.420", "21.420"],
        "vat": [{"rate": "19", "base": "18.0000", "amount": "3.42"}],
    }


SQLITE_SUMS = """
start = datetime(2026, 3, 2, 10, tzinfo=UTC)
for k in range(1, 41):  # 0.03 ... 1.20 excl. VAT: many sums a float gets wrong (0.1 + 0.02)
    session = SessionFactory(
        id_token=IdTokenFactory(organization=org), meter_stop_wh=100 * k,
        started_at=start + timedelta(hours=k), stopped_at=start + timedelta(hours=k, minutes=30),
    )
    services.cdr_create_for_session(session_id=session.pk)
cycle = services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC), render_pdfs=False)
invoice = services.invoice_mark_paid(invoice=Invoice.objects.get())
cdr = Cdr.objects.order_by("-total_excl_vat").first()
note = services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("0.10"), reason="x")
invoice.refresh_from_db()
refund = services.refund_record(invoice=invoice, amount=invoice.amount_refundable, reference="r")
invoice.refresh_from_db()
again = services.cdrs_create_for_sessions(session_ids=list(Cdr.objects.values_list("session_id", flat=True)))
print(json.dumps({
    "cdrs": Cdr.objects.count(), "priced_again": again, "invoices": len(cycle.invoices_created),
    "note": [str(note.total_excl_vat), str(note.total_vat), str(note.total_incl_vat)],
    "refunded": str(invoice.amount_refunded), "refundable": str(invoice.amount_refundable),
}))
"""


@pytest.mark.slow
def test_sqlite_keeps_every_cdr_and_takes_notes_and_refunds_whose_sums_a_float_gets_wrong(tmp_path: Path):
    """SQLite compares decimals as floats: 0.10 + 0.02 is not 0.12 there. The sum checks must
    still pass (a failed check made ``INSERT OR IGNORE`` drop about one CDR in five, silently)."""
    outcome = run_on_sqlite(SQLITE_SUMS, tmp_path)
    # 0.10 of the largest CDR (1.20 + 0.23 VAT): VAT round_half_up(0.23 x 0.10 / 1.20) = 0.02
    assert outcome == {
        "cdrs": 40,
        "priced_again": 0,
        "invoices": 1,
        "note": ["0.10", "0.02", "0.12"],
        "refunded": "0.120",
        "refundable": "0.000",
    }


# --- the same refusals as an operator meets them in the admin ----------------------------------


def _operator_client():
    from django.test import Client

    from billing.tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _deletes(model, pk: int) -> dict:
    """The admin's two ways to delete one row: its delete page, and "delete selected"."""
    meta = model._meta
    return {
        "delete page": (
            reverse(f"admin:{meta.app_label}_{meta.model_name}_delete", args=[pk]),
            {"post": "yes"},
        ),
        "delete selected": (
            reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"),
            {"action": "delete_selected", "_selected_action": [pk], "post": "yes"},
        ),
    }


def _posted_while_held(held: psycopg.Connection, client, url: str, data: dict):
    """``client.post(url, data)`` while ``held``'s open transaction holds what the admin's delete
    needs (see :func:`_while_held`), in a thread with its own database connection, closed when
    it ends. Returns the post's response."""
    from django.db import connections

    def post():
        try:
            return client.post(url, data)
        finally:
            connections.close_all()

    return _while_held(held, post, _wait_for_the_admins_delete)


def _wait_for_the_admins_delete(probe: psycopg.Connection) -> None:
    """Until the admin's ``DELETE`` waits for a lock (the test's other transaction holds it)."""
    for _ in range(300):
        with probe.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE 'DELETE FROM%%'"
            )
            if cursor.fetchone()[0]:
                return
        threading.Event().wait(0.05)
    raise AssertionError("the admin's delete never waited for the other transaction")


NOT_DELETED = {"delete page": "Not deleted: ", "delete selected": "None of them was deleted: "}


def _deleted_in_audit(model, pk: int) -> bool:
    from django.contrib.contenttypes.models import ContentType

    from accounts.models import AuditEntry

    kind = ContentType.objects.get_for_model(model)
    return AuditEntry.objects.filter(action="delete", content_type=kind, object_id=str(pk)).exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("way", ["delete page", "delete selected"])
def test_the_admin_shows_a_delete_that_cannot_take_the_cdr_table_soon_and_deletes_nothing(way):
    """A vacuum holds billing_cdr: the operator's delete of a tariff waits its few seconds, then
    the page says to try again (not a server error), and nothing is deleted or audited as
    deleted. Once the table is free, the same request deletes it."""
    bare = Tariff.objects.create(ocpi_id="WAIT", currency="EUR")  # no CDR names it
    client = _operator_client()
    url, data = _deletes(Tariff, bare.pk)[way]
    with psycopg.connect(test_database_url()) as vacuum:
        vacuum.execute("LOCK TABLE billing_cdr IN SHARE UPDATE EXCLUSIVE MODE")
        response = client.post(url, data)
        vacuum.rollback()
    assert response.status_code == 302
    assert response["Location"] == url
    page = client.get(url).content.decode()
    assert NOT_DELETED[way] in page
    assert "successfully" not in page.lower()
    assert "try again in a minute" in page
    assert "cannot be deleted now" in page
    assert Tariff.objects.filter(pk=bare.pk).exists()
    assert not _deleted_in_audit(Tariff, bare.pk)
    client.post(url, data)
    assert not Tariff.objects.filter(pk=bare.pk).exists()
    assert _deleted_in_audit(Tariff, bare.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("way", ["delete page", "delete selected"])
def test_the_admin_shows_a_tariff_delete_refused_because_a_cdr_was_written_meanwhile(way):
    """The admin found no CDR naming the tariff, but one was being written: the delete waits for
    it, is refused, and the operator sees why on the page; the tariff and the CDR stay."""
    default_tariff()
    template = services.cdr_create_for_session(session_id=SessionFactory().pk)
    bare = Tariff.objects.create(ocpi_id="RACE", currency="EUR")  # no elements, no assignment
    session = SessionFactory()
    client = _operator_client()
    url, data = _deletes(Tariff, bare.pk)[way]
    with psycopg.connect(test_database_url()) as inserter:
        inserter.execute(
            cdr_copy_sql(session_id=str(session.pk), tariff_id=str(bare.pk)), {"template": template.pk}
        )
        response = _posted_while_held(inserter, client, url, data)
    assert response.status_code == 302
    assert response["Location"] == url
    page = client.get(url).content.decode()
    assert "successfully" not in page.lower()
    assert NOT_DELETED[way] in page
    assert "something that refers to it was saved meanwhile" in page
    assert "cannot be deleted: a CDR names it" in page
    assert Tariff.objects.filter(pk=bare.pk).exists()
    assert Cdr.objects.filter(session=session, tariff=bare).exists()
    assert not _deleted_in_audit(Tariff, bare.pk)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("way", ["delete page", "delete selected"])
def test_the_admin_shows_a_charger_delete_refused_because_a_session_started_meanwhile(way):
    """The same for a plain foreign key: a charger with no session is deleted in the admin while
    it starts its first one. Django's foreign keys are checked at commit, so the admin's delete
    goes through its own check (no session yet) and fails at its commit, once the session is in.
    The charger's transaction holds the rows its session names (``FOR KEY SHARE``, what the check
    at its commit takes) so that the admin's delete waits there every time, after its own check.
    The charger and the session stay; the page says why."""
    from billing.tests.factories import ConnectorFactory
    from chargers.models import ChargePoint

    template = SessionFactory()
    connector = ConnectorFactory()
    point = connector.charge_point
    columns = [f.column for f in ChargingSession._meta.concrete_fields if not f.primary_key]
    values = [{"charge_point_id": "%(point)s", "connector_id": "%(connector)s"}.get(c, c) for c in columns]
    insert = (
        f"INSERT INTO chargers_chargingsession ({', '.join(columns)})"  # noqa: S608 - our columns
        f" SELECT {', '.join(values)} FROM chargers_chargingsession WHERE id = %(template)s"
    )
    client = _operator_client()
    url, data = _deletes(ChargePoint, point.pk)[way]
    with psycopg.connect(test_database_url()) as charger:
        charger.execute(
            "SELECT 1 FROM chargers_connector c JOIN chargers_chargepoint p ON p.id = c.charge_point_id"
            " WHERE c.id = %s FOR KEY SHARE",
            [connector.pk],
        )
        charger.execute(insert, {"point": point.pk, "connector": connector.pk, "template": template.pk})
        response = _posted_while_held(charger, client, url, data)
    assert response.status_code == 302
    assert response["Location"] == url
    page = client.get(url).content.decode()
    assert "successfully" not in page.lower()  # the foreign key is checked before Django says so
    assert NOT_DELETED[way] in page
    assert "something that refers to it was saved meanwhile" in page
    assert ChargePoint.objects.filter(pk=point.pk).exists()
    assert ChargingSession.objects.filter(charge_point=point).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("way", ["delete page", "delete selected"])
def test_the_admin_shows_a_cdr_written_between_its_two_looks_at_what_refers_to_a_tariff(way, monkeypatch):
    """The admin's confirmation looks for what refers to the tariff, then Django's collector
    looks again before deleting: a CDR committed between the two makes the collector refuse
    (``ProtectedError``), which the operator sees on the page as well."""
    from billing.admin import TariffAdmin

    default_tariff()
    template = services.cdr_create_for_session(session_id=SessionFactory().pk)
    bare = Tariff.objects.create(ocpi_id="LOOKS", currency="EUR")
    session = SessionFactory()
    first_look = TariffAdmin.get_deleted_objects

    def a_cdr_arrives_after(self, objs, request):
        looked = first_look(self, objs, request)
        with psycopg.connect(test_database_url(), autocommit=True) as pricing:
            pricing.execute(
                cdr_copy_sql(session_id=str(session.pk), tariff_id=str(bare.pk)), {"template": template.pk}
            )
        return looked

    monkeypatch.setattr(TariffAdmin, "get_deleted_objects", a_cdr_arrives_after)
    client = _operator_client()
    url, data = _deletes(Tariff, bare.pk)[way]
    response = client.post(url, data)
    assert response.status_code == 302
    assert response["Location"] == url
    monkeypatch.undo()
    page = client.get(url).content.decode()
    assert NOT_DELETED[way] in page
    assert "referenced through protected foreign keys" in page
    assert Tariff.objects.filter(pk=bare.pk).exists()
    assert not _deleted_in_audit(Tariff, bare.pk)
