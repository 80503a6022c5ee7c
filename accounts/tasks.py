"""Periodic jobs of the accounts app (schedules in ``evcharge/settings/services.py``)."""

from celery import shared_task

from accounts import call_log


@shared_task(name="accounts.tasks.api_call_log_flush", ignore_result=True)
def api_call_log_flush() -> int:
    """Write the buffered API call log to the database. Safe to run twice or concurrently."""
    return call_log.flush()


@shared_task(name="accounts.tasks.api_call_log_purge", ignore_result=True)
def api_call_log_purge() -> int:
    """Delete API call log entries past the retention period."""
    return call_log.purge()
