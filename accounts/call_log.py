"""The API call log: one entry per ``/api/`` request, written off the request path.

The middleware does one Redis ``RPUSH`` of a small JSON entry per call (no database write);
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

import json
import logging
import re
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


def buffer_entry(entry: dict) -> None:
    redis = _redis()
    if redis is None:
        _insert([entry])
        return
    key = cache.make_key(BUFFER)
    try:
        length = redis.rpush(key, json.dumps(entry, separators=(",", ":")))
        if length > settings.API_CALL_LOG_BUFFER_MAX:
            # Flushing has stopped: keep Redis alive by dropping the oldest entries.
            redis.ltrim(key, -settings.API_CALL_LOG_BUFFER_MAX, -1)
            logger.error(
                "API call log: buffer over %s entries, oldest dropped", settings.API_CALL_LOG_BUFFER_MAX
            )
    except Exception:  # a log must never fail the call it logs
        logger.warning("API call log: could not buffer an entry", exc_info=True)


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
