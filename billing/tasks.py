"""Celery tasks of billing: thin, they take ids and call services.

``billing.tasks.cdr_price_session`` is sent by name by the OCPP side
(``celery_app.send_task("billing.tasks.cdr_price_session", kwargs={"session_id": ...})``)
after a session's stop commits; keep the name and the argument.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from billing import services

# Transient: the database restarting or a lock timeout. Everything is idempotent, so a
# redelivery (acks_late) or a retry repeats nothing.
RETRY = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 8,
    "acks_late": True,
}


@shared_task(name="billing.tasks.cdr_price_session", **RETRY)
def cdr_price_session(session_id: int) -> int | None:
    """Price a finished session into its CDR (once). A missing session ends quietly."""
    cdr = services.cdr_create_for_session(session_id=session_id)
    return cdr.pk if cdr is not None else None


@shared_task(name="billing.tasks.cdr_sweep", **RETRY)
def cdr_sweep(grace_minutes: int = 10, lookback_hours: int | None = None) -> int:
    """Price finished sessions whose pricing message never arrived (older than the grace period,
    and stopped within ``lookback_hours`` when given; ``None``: every finished session)."""
    now = timezone.now()
    return services.cdr_sweep(
        stopped_before=now - timedelta(minutes=grace_minutes),
        stopped_after=None if lookback_hours is None else now - timedelta(hours=lookback_hours),
    )


@shared_task(name="billing.tasks.billing_cycle_fan_out", bind=True, **RETRY)
def billing_cycle_fan_out(self) -> dict:
    """The hourly cycle: close the billing periods that ended, one task per batch of accounts.

    The batches run on every free worker at once, each one transaction, and one batch that fails
    is retried alone. They are sent to the queue this task came from and all close the periods
    that ended before this task's "now", however late they run (issued, and numbered, when
    they run). Sent twice (a retry, "run billing now" during the hourly run), every account is
    still invoiced once a period: each batch skips what is invoiced already.
    """
    now = timezone.now()
    batches = services.billing_cycle_batches(now=now)
    # Before sending: a retry for a failure here must not send every batch again.
    other_currency_waiting = services.cdrs_waiting_in_another_currency_report()
    queue = (self.request.delivery_info or {}).get("routing_key")
    sent = [
        billing_cycle_batch.apply_async(
            kwargs={"account_ids": batch, "now": now.isoformat()}, **({"queue": queue} if queue else {})
        )
        for batch in batches
    ]
    return {
        "accounts_seen": sum(len(batch) for batch in batches),
        "batch_task_ids": [result.id for result in sent],
        "other_currency_waiting": other_currency_waiting,
    }


@shared_task(name="billing.tasks.billing_cycle_batch", **RETRY)
def billing_cycle_batch(account_ids: list[int], now: str) -> list[int]:
    """One batch of the cycle (one transaction): the ids of the invoices it made. It closes the
    periods that ended before the fan-out's ``now``; its invoices are issued when it runs."""
    return services.invoices_close_periods(
        account_ids=account_ids, now=datetime.fromisoformat(now), issued_at=timezone.now()
    )


@shared_task(name="billing.tasks.billing_cycle_run", **RETRY)
def billing_cycle_run() -> dict:
    """The whole cycle in this one task, batch after batch (the fan-out's work, in one worker)."""
    result = services.billing_cycle_run()
    return {
        "accounts_seen": result.accounts_seen,
        "invoices_created": result.invoices_created,
        "other_currency_waiting": result.other_currency_waiting,
    }


@shared_task(name="billing.tasks.invoice_render_pdf", **RETRY)
def invoice_render_pdf(invoice_id: int, force: bool = False) -> str | None:
    invoice = services.invoice_render_pdf(invoice_id=invoice_id, force=force)
    return invoice.pdf.name if invoice is not None and invoice.pdf else None


@shared_task(name="billing.tasks.credit_note_render_pdf", **RETRY)
def credit_note_render_pdf(credit_note_id: int, force: bool = False) -> str | None:
    note = services.credit_note_render_pdf(credit_note_id=credit_note_id, force=force)
    return note.pdf.name if note is not None and note.pdf else None
