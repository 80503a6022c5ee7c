"""The API call log: one entry per ``/api/`` request, written off the request path.

The middleware appends a small JSON entry to an in-process list (no database write, no
network round trip on the request thread); a background thread ships the list to a Redis
buffer with one ``RPUSH`` every 200 ms (``_Shipper``);
the beat task ``accounts.tasks.api_call_log_flush`` moves the buffer into PostgreSQL in
batches (and into DynamoDB when ``API_CALL_LOG_DYNAMODB_TABLE`` is set);
``accounts.tasks.api_call_log_purge`` deletes entries older than
``API_CALL_LOG_RETENTION_DAYS``.

Flushing is safe to repeat: a batch is first moved (atomically, by a Lua script) to an
in-flight list, inserted, then dropped; a flush that died midway leaves the in-flight list,
which the next flush inserts again, and each entry's unique ``entry_id`` makes the second
insert of an entry a no-op. One flusher runs at a time (a lock in Redis).

Without Redis (the embedded quick start) entries are written straight to the database.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiCallLog, ApiKey

logger = logging.getLogger(__name__)

BUFFER = "api-call-log:buffer"
IN_FLIGHT = "api-call-log:in-flight"
LOCK = "api-call-log:flush-lock"

_MOVE_BATCH = """
local items = redis.call('LRANGE', KEYS[1], 0, ARGV[1] - 1)
if #items > 0 then
    redis.call('LTRIM', KEYS[1], #items, -1)
    redis.call('RPUSH', KEYS[2], unpack(items))
end
return items
"""
_move_script = None


def _redis():
    try:
        from django_redis import get_redis_connection

        return get_redis_connection("default")
    except (ImportError, NotImplementedError):
        return None


_client_ident = BaseThrottle()
_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")


@lru_cache(maxsize=1024)
def readable_route(route: str) -> str:
    """``api/v1/id-tokens/(?P<pk>[^/.]+)/$`` → ``api/v1/id-tokens/<pk>/``."""
    return _REGEX_GROUP.sub(r"<\1>", route).replace("^", "").replace("$", "")


def entry_for(request, response, started: float) -> dict:
    user = getattr(request, "user", None)
    auth = getattr(request, "auth", None)
    match = getattr(request, "resolver_match", None)
    return {
        "entry_id": uuid.uuid4().hex,
        "at": time.time(),
        "user_id": user.pk if user is not None and getattr(user, "is_authenticated", False) else None,
        "api_key_id": auth.pk if isinstance(auth, ApiKey) else None,
        "method": request.method,
        "route": readable_route(match.route) if match is not None else "",
        "path": request.path[:1024],
        "status": response.status_code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        # DRF's rule (honours NUM_PROXIES for X-Forwarded-For), the same the throttles use.
        "client_ip": _client_ident.get_ident(request) or None,
        "request_id": getattr(request, "request_id", "") or "",
    }


class _Shipper:
    """Moves entries from this process to the Redis buffer, off the request thread.

    A request only appends its JSON line to a list (microseconds). A daemon thread pushes
    what has gathered with one ``RPUSH`` every ``API_CALL_LOG_SHIP_INTERVAL_MS`` (sooner when
    ``SHIP_BATCH`` lines are waiting), and at interpreter exit. After a fork (gunicorn, Celery
    prefork) the child starts its own thread and drops what it inherited (the parent ships that).
    A process killed with SIGKILL loses at most one interval of entries.
    """

    SHIP_BATCH = 500

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ship_lock = threading.Lock()
        self._lines: list[tuple[str, str]] = []  # (Redis key, JSON line)
        self._pid: int | None = None
        self._wake = threading.Event()

    def put(self, key: str, line: str) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._start()
            self._lines.append((key, line))
            full = len(self._lines) >= self.SHIP_BATCH
        if full:
            self._wake.set()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._lines = []
        thread = threading.Thread(target=self._run, name="api-call-log-shipper", daemon=True)
        thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(timeout=settings.API_CALL_LOG_SHIP_INTERVAL_MS / 1000)
            self._wake.clear()
            self.ship()

    def ship(self) -> int:
        """Push what has gathered now; returns how many lines went."""
        with self._ship_lock:
            with self._lock:
                lines, self._lines = self._lines, []
            if not lines:
                return 0
            try:
                by_key: dict[str, list[str]] = {}
                for key, line in lines:
                    by_key.setdefault(key, []).append(line)
                for key, key_lines in by_key.items():
                    _push(key, key_lines)
            except Exception:  # a log must never fail or stop the process it logs
                logger.warning("API call log: could not buffer %s entries", len(lines), exc_info=True)
            return len(lines)


def _push(key: str, lines: list[str]) -> None:
    redis = _redis()
    length = 0
    for start in range(0, len(lines), 1000):
        length = redis.rpush(key, *lines[start : start + 1000])
    if length > settings.API_CALL_LOG_BUFFER_MAX:
        # Flushing has stopped: keep Redis alive by dropping the oldest entries.
        redis.ltrim(key, -settings.API_CALL_LOG_BUFFER_MAX, -1)
        logger.error("API call log: buffer over %s entries, oldest dropped", settings.API_CALL_LOG_BUFFER_MAX)


_shipper = _Shipper()
atexit.register(_shipper.ship)


def drain() -> int:
    """Push this process's pending entries to Redis now (tests, shutdown, before a flush)."""
    return _shipper.ship()


def buffer_entry(entry: dict) -> None:
    if _redis() is None:
        _insert([entry])  # the embedded quick start: no Redis, write straight away
        return
    # The key is made here: Django's cache objects are per thread, and the shipper's thread
    # must push where this request's cache settings say.
    _shipper.put(cache.make_key(BUFFER), json.dumps(entry, separators=(",", ":")))


class ApiCallLogMiddleware:
    """Logs every request under ``/api/``. Place it right after ``RequestIdMiddleware``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.API_CALL_LOG_ENABLED or not request.path.startswith("/api/"):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        buffer_entry(entry_for(request, response, started))
        return response


def _row(entry: dict) -> ApiCallLog:
    ip = entry.get("client_ip") or None
    return ApiCallLog(
        entry_id=uuid.UUID(entry["entry_id"]),
        at=datetime.fromtimestamp(entry["at"], tz=UTC),
        user_id=entry.get("user_id"),
        api_key_id=entry.get("api_key_id"),
        method=entry["method"][:8],
        route=entry.get("route", "")[:255],
        path=entry["path"][:1024],
        status=entry["status"],
        latency_ms=entry["latency_ms"],
        client_ip=ip,
        request_id=entry.get("request_id", "")[:128],
    )


def _insert(entries: list[dict]) -> None:
    with transaction.atomic():
        ApiCallLog.objects.bulk_create([_row(e) for e in entries], ignore_conflicts=True)
    if settings.API_CALL_LOG_DYNAMODB_TABLE:
        dynamodb_write(entries)


def dynamodb_write(entries: list[dict]) -> None:
    """Put entries into the DynamoDB table (partition key ``entry_id``); a repeat overwrites."""
    import boto3

    resource = boto3.resource(
        "dynamodb",
        endpoint_url=settings.API_CALL_LOG_DYNAMODB_ENDPOINT_URL or None,
        region_name=settings.API_CALL_LOG_DYNAMODB_REGION or None,
    )
    table = resource.Table(settings.API_CALL_LOG_DYNAMODB_TABLE)
    ttl = int(timedelta(days=settings.API_CALL_LOG_RETENTION_DAYS).total_seconds())
    with table.batch_writer(overwrite_by_pkeys=["entry_id"]) as batch:
        for entry in entries:
            item = {k: v for k, v in entry.items() if v is not None and v != ""}
            item["at"] = Decimal(str(entry["at"]))
            item["latency_ms"] = Decimal(str(entry["latency_ms"]))
            item["expires_at"] = int(entry["at"]) + ttl  # DynamoDB TTL attribute
            batch.put_item(Item=item)


def flush(*, batch_size: int | None = None, max_batches: int = 1000) -> int:
    """Move buffered entries into the database; returns how many were written."""
    global _move_script
    redis = _redis()
    if redis is None:
        return 0
    drain()
    batch_size = batch_size or settings.API_CALL_LOG_BATCH_SIZE
    buffer_key, in_flight_key, lock_key = (cache.make_key(k) for k in (BUFFER, IN_FLIGHT, LOCK))
    if not redis.set(lock_key, "1", nx=True, ex=300):
        return 0  # another flush is running
    if _move_script is None:
        _move_script = redis.register_script(_MOVE_BATCH)
    written = 0
    try:
        for _ in range(max_batches):
            raw = redis.lrange(in_flight_key, 0, -1) or _move_script(
                keys=[buffer_key, in_flight_key], args=[batch_size]
            )
            if not raw:
                break
            entries = []
            for item in raw:
                try:
                    entries.append(json.loads(item))
                except ValueError:
                    logger.error("API call log: dropped an unreadable entry %r", item[:200])
            if entries:
                _insert(entries)
            redis.delete(in_flight_key)
            written += len(entries)
    finally:
        redis.delete(lock_key)
    return written


def purge(*, now: datetime | None = None, batch_size: int = 10_000) -> int:
    """Delete entries older than the retention period, in bounded batches; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.API_CALL_LOG_RETENTION_DAYS)
    deleted = 0
    while True:
        ids = list(ApiCallLog.objects.filter(at__lt=cutoff).values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        deleted += ApiCallLog.objects.filter(pk__in=ids).delete()[0]
