"""Celery end to end: a real worker process, the real Redis broker, the real task."""

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from evcharge.celery import app as celery_app
from evcharge.core.tasks import clear_expired_sessions


def _session(expires_in: timedelta) -> str:
    store = SessionStore()
    store["k"] = "v"
    store.create()
    Session.objects.filter(pk=store.session_key).update(expire_date=timezone.now() + expires_in)
    return store.session_key


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the worker process must see committed rows
def test_housekeeping_task_runs_on_a_real_worker_through_redis(celery_worker_factory):
    expired = [_session(timedelta(days=-1)), _session(timedelta(minutes=-5))]
    alive = _session(timedelta(days=1))
    worker = celery_worker_factory()

    result = clear_expired_sessions.apply_async(queue=worker.queue)
    deleted = result.get(timeout=60)

    assert deleted == 2, worker.output()
    assert not Session.objects.filter(pk__in=expired).exists()
    assert Session.objects.filter(pk=alive).exists()
    assert "clear_expired_sessions" in worker.output()


@pytest.mark.django_db(transaction=True)  # the scheduler closes and reopens DB connections
def test_beat_schedule_declared_in_code_lands_in_the_admin_tables():
    DatabaseScheduler(app=celery_app)  # what `celery beat` does on start
    task = PeriodicTask.objects.get(name="housekeeping.clear-expired-sessions")
    assert task.task == "evcharge.core.tasks.clear_expired_sessions"
    assert task.enabled
    assert task.interval.every == 6 * 3600 or (task.interval.every, task.interval.period) == (6, "hours")
