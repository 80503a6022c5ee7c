"""Fixtures shared by every app's tests.

The suite runs against real PostgreSQL and Redis (``make test`` points ``DATABASE_URL`` and
``REDIS_URL`` at the local servers); it refuses to run on the embedded SQLite set-up.
"""

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent


def pytest_configure(config):
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql" or not settings.REDIS_URL:
        raise pytest.UsageError(
            "The test suite needs PostgreSQL and Redis: run it with `make test`, or set "
            "DATABASE_URL=postgres://... and REDIS_URL=redis://..."
        )
    # Plain HTTP in tests, also for servers started before any per-test fixture (live_server).
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(scope="session", autouse=True)
def _async_connections_closed(django_db_setup) -> Iterator[None]:
    """Close the connections that async code opened in asgiref's sync thread (consumers run
    in-process, ``database_sync_to_async``) before the test database is dropped: the teardown
    closes only this thread's, and dropping a database someone is connected to fails."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    asyncio.run(sync_to_async(connections.close_all)())


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.SECURE_SSL_REDIRECT = False
    # No collectstatic in tests: templates resolve static paths without the manifest.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Argon2 is the production hasher (see accounts tests); MD5 keeps factories fast.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
    ]


@pytest.fixture(autouse=True)
def _own_media_root(settings, tmp_path, monkeypatch):
    """Stored files (invoice PDFs) go to a folder of the test's own, in this process and in
    the workers it starts (which read MEDIA_ROOT from the environment)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setenv("MEDIA_ROOT", str(settings.MEDIA_ROOT))


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    """Each test starts with none of our keys in Redis (only our prefix is touched)."""
    from django.core.cache import cache

    cache.delete_pattern("*")
    yield
    cache.delete_pattern("*")


def test_database_url() -> str:
    """DATABASE_URL pointing at the test database pytest-django created, for subprocesses."""
    from django.db import connection

    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


test_database_url.__test__ = False  # a helper, not a test


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a server or worker process the test starts against the test database."""
    env = {**os.environ, "DATABASE_URL": test_database_url(), "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


class WorkerProcess:
    def __init__(self, queue: str, process: subprocess.Popen, log: Path):
        self.queue = queue
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def celery_worker_factory(tmp_path) -> Iterator:
    """Start real Celery worker processes on the real Redis broker, each on its own queue.

    The queue name is unique per test so that no other worker (a developer's ``make run``,
    another test) takes the messages. Tasks must be sent with ``queue=worker.queue``.
    """
    started: list[WorkerProcess] = []

    def start(
        queue: str | None = None, concurrency: int = 1, pool: str = "prefork", env: dict | None = None
    ) -> WorkerProcess:
        queue = queue or f"test-{uuid.uuid4().hex[:12]}"
        log = tmp_path / f"worker-{len(started)}.log"
        handle = log.open("w")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "evcharge",
                "worker",
                "-Q",
                queue,
                "-c",
                str(concurrency),
                "-P",
                pool,
                "--loglevel",
                "INFO",
                "-n",
                f"{queue}-{len(started)}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=subprocess_env(LOG_FORMAT="text", **(env or {})),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        worker = WorkerProcess(queue, process, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.terminate()
    for worker in started:
        try:
            worker.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
