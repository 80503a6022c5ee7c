"""Platform housekeeping tasks."""

from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone


@shared_task(name="evcharge.core.tasks.clear_expired_sessions")
def clear_expired_sessions() -> int:
    """Delete expired admin/browsable-API login sessions; returns how many went.

    Harmless to run twice or concurrently: it deletes by expiry date only.
    """
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted
