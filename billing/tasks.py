"""Celery tasks of billing: thin, they take ids and call services.

``billing.tasks.cdr_price_session`` is sent by name by the OCPP side
(``celery_app.send_task("billing.tasks.cdr_price_session", kwargs={"session_id": ...})``)
after a session's stop commits; keep the name and the argument.
"""

from __future__ import annotations

from datetime import timedelta

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


@shared_task(name="billing.tasks.billing_cycle_run", **RETRY)
def billing_cycle_run() -> dict:
    """Close the billing periods that ended: one invoice per account and period, exactly once."""
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
