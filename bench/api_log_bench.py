"""API call log: the same API load with the log on and off, in one run.

The whole stack runs in-process (Django's test client through every middleware, the real
DRF views, PostgreSQL, Redis) in a database of its own (``<DATABASE name>_api_log_bench``,
created and dropped here) and under its own Redis key prefix, so nothing else is touched.

The load interleaves requests with the log on and off, in ABBA order (so drift — caches
warming, other work on the machine — falls on both alike): an authenticated driver calling
``GET /api/v1/id-tokens/`` and ``GET /api/v1/me/``. With the log on, each call queues one entry
that a background thread ships to Redis in batched ``RPUSH``es; afterwards the buffer is flushed
to PostgreSQL in batches, as the Celery beat task does, and timed. The log's own work per call
is also timed alone.

Target: the log adds at most 10% to the median latency.
Size: ``BENCH_API_REQUESTS`` (default 4,000 in all, half with the log on).
"""

from __future__ import annotations

import os
import statistics
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from django.test import Client
from django.test.utils import override_settings

REQUESTS = int(os.environ.get("BENCH_API_REQUESTS", "4000"))
TARGET = 1.10
PATHS = ["/api/v1/id-tokens/", "/api/v1/me/"]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _setup() -> str:
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.models import IdToken, Membership, Organization, User

    organization = Organization.objects.create(name="Bench fleet", kind=Organization.Kind.FLEET)
    driver = User.objects.create_user(email="bench-driver@example.com", password=None)
    Membership.objects.create(user=driver, organization=organization, role=Membership.Role.DRIVER)
    IdToken.objects.bulk_create(
        IdToken(uid=f"BENCH{i:05d}", user=driver, organization=organization) for i in range(20)
    )
    return str(RefreshToken.for_user(driver).access_token)


def _interleaved(client: Client, token: str, count: int, on: list[float], off: list[float]) -> None:
    """Requests with the log on and off: each mode in turn serves a pair of requests (one per
    path), the modes in ABBA order (on, off, off, on, ...), so background load, warm-up and
    mode switches fall on both alike."""
    for i in range(count):
        enabled = (i // 2) % 4 in (0, 3)
        settings.API_CALL_LOG_ENABLED = enabled  # read by the middleware on every request
        path = PATHS[i % len(PATHS)]
        started = time.perf_counter()
        response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost", secure=True)
        (on if enabled else off).append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.content[:200]!r}")


def _entry_cost_us(count: int = 2000) -> float:
    """What the middleware adds to a call, alone: build the entry and queue it for the shipper."""
    from django.http import HttpResponse
    from django.test import RequestFactory

    from accounts import call_log

    request = RequestFactory().get("/api/v1/me/")
    request.request_id = "bench"
    response = HttpResponse()
    started = time.perf_counter()
    for _ in range(count):
        call_log.buffer_entry(call_log.entry_for(request, response, time.perf_counter()))
    return (time.perf_counter() - started) / count * 1e6


def _drop_buffer() -> None:
    from django_redis import get_redis_connection

    from accounts import call_log

    call_log.drain()
    redis = get_redis_connection("default")
    for key in (call_log.BUFFER, call_log.IN_FLIGHT, call_log.LOCK):
        redis.delete(cache.make_key(key))


def run() -> None:
    from accounts import call_log
    from accounts.models import ApiCallLog

    settings_dict = connection.settings_dict
    bench_name = f"{settings_dict['NAME']}_api_log_bench"
    settings_dict.setdefault("TEST", {})["NAME"] = bench_name
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    cache.key_prefix = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}-api-log-bench"
    rate_limits = override_settings(
        API_RATE_LIMITS={"default": {"user": None, "api_key": None, "anon": None}}
    )
    rate_limits.enable()
    log_setting = settings.API_CALL_LOG_ENABLED
    try:
        token = _setup()
        client = Client()
        warm_on: list[float] = []
        _interleaved(client, token, 200, warm_on, [])
        call_log.flush()
        ApiCallLog.objects.all().delete()

        on: list[float] = []
        off: list[float] = []
        _interleaved(client, token, REQUESTS, on, off)
        settings.API_CALL_LOG_ENABLED = True

        started = time.perf_counter()
        flushed = call_log.flush()
        flush_s = time.perf_counter() - started
        rows = ApiCallLog.objects.count()
        entry_us = _entry_cost_us()
        _drop_buffer()

        print(
            f"{len(on) + len(off):,} requests, log on and off interleaved (GET {', '.join(PATHS)}); "
            f"database {bench_name}"
        )
        print(f"{'call log':10} {'requests':>9} {'median ms':>10} {'p99 ms':>8} {'mean ms':>8}")
        for label, values in (("off", off), ("on", on)):
            print(
                f"{label:10} {len(values):9,} {statistics.median(values):10.3f} "
                f"{_percentile(values, 0.99):8.3f} {statistics.fmean(values):8.3f}"
            )
        ratio = statistics.median(on) / statistics.median(off)
        p99_ratio = _percentile(on, 0.99) / _percentile(off, 0.99)
        print(f"the log's own work per call on the request thread (entry + queue), alone: {entry_us:.0f} us")
        print(f"on / off: median {ratio:.3f}x, p99 {p99_ratio:.3f}x (target: median at most {TARGET:.2f}x)")
        print(
            f"flush: {flushed:,} entries to PostgreSQL in {flush_s:.2f} s "
            f"({flushed / flush_s if flush_s else 0:,.0f} entries/s); rows written: {rows:,} of {len(on):,}"
        )
        print("OK" if ratio <= TARGET and rows == len(on) else "OVER TARGET")
    finally:
        settings.API_CALL_LOG_ENABLED = log_setting
        rate_limits.disable()
        _drop_buffer()
        connections.close_all()
        connection.creation.destroy_test_db(bench_name, verbosity=0, keepdb=False)


main = run
