"""Billing tasks in real Celery worker processes on the real Redis broker and PostgreSQL.

Concurrency is made to happen, not hoped for: the test holds row locks from its own database
connections so that workers are caught at a known point (waiting on an account row, or on
the invoice-number counter inside the issuing transaction), then lets go or kills them.
"""

import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from billing.models import BillingAccount, Cdr, Invoice, InvoiceLine, NumberCounter
from billing.tasks import billing_cycle_fan_out, billing_cycle_run
from billing.tests.factories import (
    IdTokenFactory,
    OrganizationFactory,
    SessionFactory,
    account_for_org,
    default_tariff,
)
from billing.tests.test_invoicing import _pdf_text
from conftest import test_database_url
from evcharge.celery import app as celery_app

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MARCH = datetime(2026, 3, 2, 10, tzinfo=UTC)


def wait_for(condition, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def waiting_on_locks(conn: psycopg.Connection) -> int:
    """Backends of the test database blocked on a row lock right now."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cur.fetchone()[0]


def accounts_with_cdrs(n: int, per_account: int = 2) -> list[BillingAccount]:
    default_tariff(energy="0.30", vat="19")
    accounts = []
    for _ in range(n):
        org = OrganizationFactory()
        accounts.append(account_for_org(org))
        for k in range(per_account):
            token = IdTokenFactory(organization=org)
            SessionFactory(
                id_token=token, started_at=MARCH.replace(hour=8 + k), meter_stop_wh=1_000 * (k + 1)
            )
    from billing import services
    from chargers.models import ChargingSession

    for session_id in ChargingSession.objects.values_list("pk", flat=True):
        services.cdr_create_for_session(session_id=session_id)
    return sorted(accounts, key=lambda a: a.pk)


def assert_billed_exactly_once(accounts: list[BillingAccount]) -> None:
    assert Invoice.objects.count() == len(accounts)
    for account in accounts:
        assert Invoice.objects.filter(account=account).count() == 1
    cdr_ids = list(InvoiceLine.objects.values_list("cdr_id", flat=True))
    assert sorted(cdr_ids) == sorted(Cdr.objects.values_list("pk", flat=True))
    numbers = sorted(int(n.rsplit("-", 1)[1]) for n in Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, len(accounts) + 1))
    for invoice in Invoice.objects.all():
        lines = list(invoice.lines.all())
        assert invoice.total_incl_vat == sum(line.cdr.total_incl_vat for line in lines)


def test_cdr_task_sent_by_name_is_idempotent(celery_worker_factory):
    default_tariff(energy="0.30", vat="19")
    session = SessionFactory(meter_stop_wh=22_300)
    worker = celery_worker_factory()
    results = [
        celery_app.send_task(
            "billing.tasks.cdr_price_session", kwargs={"session_id": session.pk}, queue=worker.queue
        )
        for _ in range(3)
    ]
    missing = celery_app.send_task(
        "billing.tasks.cdr_price_session", kwargs={"session_id": 10**9}, queue=worker.queue
    )
    ids = {r.get(timeout=90) for r in results}
    assert missing.get(timeout=90) is None  # a missing session ends quietly
    cdr = Cdr.objects.get()
    assert ids == {cdr.pk}
    assert cdr.total_incl_vat == Decimal("7.96")


def test_two_workers_running_the_same_cycle_make_one_invoice_each(celery_worker_factory):
    accounts = accounts_with_cdrs(12)
    workers = [celery_worker_factory(), celery_worker_factory()]
    with psycopg.connect(test_database_url(), autocommit=False) as holder:
        # Hold the first account so both cycles start and queue up behind it at once.
        holder.execute("SELECT id FROM billing_billingaccount WHERE id = %s FOR UPDATE", [accounts[0].pk])
        results = [billing_cycle_run.apply_async(queue=w.queue) for w in workers]
        with psycopg.connect(test_database_url(), autocommit=True) as probe:
            wait_for(lambda: waiting_on_locks(probe) >= 2, what="both workers blocked on the first account")
        holder.rollback()
    outcomes = [r.get(timeout=120) for r in results]
    assert sum(len(o["invoices_created"]) for o in outcomes) == len(accounts)
    assert_billed_exactly_once(accounts)


def test_the_hourly_cycle_spreads_its_batches_over_the_workers_and_bills_once(celery_worker_factory):
    accounts = accounts_with_cdrs(8)
    queue = f"test-{uuid.uuid4().hex[:12]}"
    # Two accounts per batch: (1, 2), (3, 4), (5, 6), (7, 8); two workers on one queue.
    for _ in range(2):
        celery_worker_factory(queue=queue, env={"BILLING_CYCLE_BATCH": "2"})
    with (
        psycopg.connect(test_database_url(), autocommit=False) as holder,
        psycopg.connect(test_database_url(), autocommit=True) as probe,
    ):
        # The first batch waits on its first account: the other worker bills the three others.
        holder.execute("SELECT id FROM billing_billingaccount WHERE id = %s FOR UPDATE", [accounts[0].pk])
        first = billing_cycle_fan_out.apply_async(queue=queue)
        wait_for(
            lambda: Invoice.objects.count() == 6 and waiting_on_locks(probe) == 1,
            what="three batches invoiced on one worker while the other waits",
        )
        # Sent again meanwhile (a retry, or "run billing now" during the hourly run): only the
        # first two accounts still have CDRs waiting; their batch waits too, for the same account.
        second = billing_cycle_fan_out.apply_async(queue=queue)
        wait_for(lambda: waiting_on_locks(probe) == 2, what="both first batches waiting")
        holder.rollback()
        outcomes = [first.get(timeout=120), second.get(timeout=120)]
    assert [o["accounts_seen"] for o in outcomes] == [8, 2]
    made = [
        [celery_app.AsyncResult(task_id).get(timeout=120) for task_id in o["batch_task_ids"]]
        for o in outcomes
    ]
    assert [len(batches) for batches in made] == [4, 1]
    assert sorted(pk for batches in made for ids in batches for pk in ids) == sorted(
        Invoice.objects.values_list("pk", flat=True)
    )
    assert made[1] == [[]]  # the first run's batch invoiced those two first
    assert_billed_exactly_once(accounts)


def test_worker_killed_mid_cycle_loses_nothing_and_duplicates_nothing(celery_worker_factory):
    accounts = accounts_with_cdrs(8)
    sixth = accounts[5]
    # Two accounts per transaction: batches (1, 2), (3, 4), (5, 6), (7, 8).
    worker = celery_worker_factory(pool="solo", env={"BILLING_CYCLE_BATCH": "2"})  # the task runs here
    account_lock = psycopg.connect(test_database_url(), autocommit=False)
    counter_lock = psycopg.connect(test_database_url(), autocommit=False)
    probe = psycopg.connect(test_database_url(), autocommit=True)
    try:
        account_lock.execute("SELECT id FROM billing_billingaccount WHERE id = %s FOR UPDATE", [sixth.pk])
        billing_cycle_run.apply_async(queue=worker.queue)
        # Two batches are invoiced and committed; the worker waits for the sixth account.
        wait_for(lambda: Invoice.objects.count() == 4 and waiting_on_locks(probe) == 1, what="four invoices")
        # Take the number counter, then let the sixth account go: the worker writes the third
        # batch's invoices and lines and blocks on the counter, inside its issuing transaction.
        counter_lock.execute("SELECT id FROM billing_numbercounter FOR UPDATE")
        account_lock.rollback()
        wait_for(lambda: waiting_on_locks(probe) == 1, what="worker blocked on the counter")
        time.sleep(0.5)
        assert waiting_on_locks(probe) == 1

        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait(timeout=30)
        counter_lock.rollback()
        wait_for(lambda: waiting_on_locks(probe) == 0, what="the killed worker's transaction to end")
    finally:
        for conn in (account_lock, counter_lock, probe):
            conn.close()

    # Nothing half-written survived the kill: four whole invoices, the counter at four.
    assert Invoice.objects.count() == 4
    assert not Invoice.objects.filter(account__in=accounts[4:6]).exists()
    assert not InvoiceLine.objects.filter(cdr__account__in=accounts[4:]).exists()
    assert NumberCounter.objects.get().last_number == 4

    rerun = celery_worker_factory()
    outcome = billing_cycle_run.apply_async(queue=rerun.queue).get(timeout=120)
    assert len(outcome["invoices_created"]) == 4
    assert billing_cycle_run.apply_async(queue=rerun.queue).get(timeout=120)["invoices_created"] == []
    assert_billed_exactly_once(accounts)


def test_pdf_task_renders_into_the_default_storage(celery_worker_factory):
    from django.core.files.storage import default_storage

    from billing import services
    from billing.tasks import invoice_render_pdf

    accounts = accounts_with_cdrs(1, per_account=1)
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))
    invoice = Invoice.objects.get(account=accounts[0])
    worker = celery_worker_factory()
    name = invoice_render_pdf.apply_async(kwargs={"invoice_id": invoice.pk}, queue=worker.queue).get(
        timeout=90
    )
    try:
        invoice.refresh_from_db()
        assert name == invoice.pdf.name == f"invoices/2026/{invoice.number}.pdf"
        with default_storage.open(name, "rb") as handle:
            assert handle.read(4) == b"%PDF"
    finally:
        default_storage.delete(name)


def test_a_credit_note_pdf_is_rendered_by_a_worker_once_the_note_commits(celery_worker_factory, settings):
    """The whole path: the note commits, its on-commit hook sends the task to the default queue,
    a worker renders the PDF into the default storage."""
    from django.core.files.storage import default_storage

    from billing import services
    from billing.models import CreditNote

    accounts = accounts_with_cdrs(1, per_account=1)
    cdr = Cdr.objects.get(account=accounts[0])
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(queue)  # what earlier tests left for no worker
    worker = celery_worker_factory(queue=queue)
    note = services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("0.10"), reason="late start")
    try:
        wait_for(lambda: CreditNote.objects.filter(pk=note.pk).exclude(pdf="").exists(), 90, "the PDF")
    except AssertionError as error:
        raise AssertionError(f"{error}; worker log:\n{worker.output()}") from None
    note.refresh_from_db()
    first = note.pdf.name
    try:
        assert first == f"credit-notes/{note.number.split('-')[1]}/{note.number}.pdf"
        with default_storage.open(first, "rb") as handle:
            assert "(The CDR is not invoiced yet" in _pdf_text(handle.read())
        # The cycle invoices the CDR and attaches the note: the worker renders it again.
        # (issued after the note, as in life: the cycle's clock is after the note's)
        services.billing_cycle_run(now=datetime.now(UTC) + timedelta(days=62), render_pdfs=False)
        invoice = Invoice.objects.get(account=accounts[0])
        try:
            wait_for(lambda: CreditNote.objects.get(pk=note.pk).pdf.name != first, 90, "the new PDF")
        except AssertionError as error:
            raise AssertionError(f"{error}; worker log:\n{worker.output()}") from None
        note.refresh_from_db()
        assert not default_storage.exists(first)
        with default_storage.open(note.pdf.name, "rb") as handle:
            text = _pdf_text(handle.read())  # the sentence wraps: its two parts
        assert "deducted on invoice" in text
        assert invoice.number in text
    finally:
        for name in {first, note.pdf.name}:
            default_storage.delete(name)
