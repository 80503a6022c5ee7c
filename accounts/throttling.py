"""Rate limits per user and per API key, counted in Redis.

A fixed window per caller: the first request of a window creates the counter with an expiry,
each request increments it, and the increment and the expiry happen in one Lua script, so
concurrent requests in any number of processes never lose a count (no read-then-write).

Rates come from ``API_RATE_LIMITS`` (``evcharge/settings/accounts.py``): per *throttle scope*
(a view's ``throttle_scope`` attribute, ``"default"`` when it has none), one rate per kind of
caller, e.g. ``{"default": {"user": "600/min", "api_key": "1200/min", "anon": "60/min"}}``.
A rate of ``None`` means unlimited. An API key's own ``rate_limit`` (set by operators in the
admin) replaces the default scope's API key rate for that key. Over the limit the API answers
429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiKey

_PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}

_INCR_WITH_EXPIRY = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""
_script = None


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"600/min"`` → (600, 60); also ``"10/5s"`` style multipliers → (10, 5)."""
    if rate is None:
        return None
    count, _, period = rate.partition("/")
    digits = "".join(ch for ch in period if ch.isdigit())
    unit = period[len(digits) :]
    return int(count), int(digits or 1) * _PERIODS[unit]


def _redis():
    try:
        from django_redis import get_redis_connection

        return get_redis_connection("default")
    except (ImportError, NotImplementedError):
        return None  # the embedded quick start: local-memory cache


def increment(key: str, window: int) -> int:
    """Atomically add one to the window's counter and return it."""
    global _script
    redis = _redis()
    if redis is None:
        cache.add(key, 0, timeout=window)
        return cache.incr(key)
    if _script is None:
        _script = redis.register_script(_INCR_WITH_EXPIRY)
    return int(_script(keys=[cache.make_key(key)], args=[window]))


class RedisRateThrottle(BaseThrottle):
    """DRF default throttle: one counter per caller (API key, user or client address) and scope."""

    def __init__(self):
        self.wait_seconds: int | None = None

    def caller(self, request) -> tuple[str, str]:
        if isinstance(request.auth, ApiKey):
            return "api_key", str(request.auth.pk)
        if request.user is not None and request.user.is_authenticated and request.user.pk is not None:
            return "user", str(request.user.pk)
        return "anon", self.get_ident(request)

    def allow_request(self, request, view) -> bool:
        scope = getattr(view, "throttle_scope", None) or "default"
        kind, ident = self.caller(request)
        limits = settings.API_RATE_LIMITS.get(scope) or settings.API_RATE_LIMITS["default"]
        rate = parse_rate(limits.get(kind))
        if kind == "api_key" and scope == "default" and request.auth.rate_limit:
            rate = parse_rate(request.auth.rate_limit)  # an operator set this key's own rate
        if rate is None:
            return True
        allowed, window = rate
        now = time.time()
        window_start = int(now // window) * window
        count = increment(f"ratelimit:{scope}:{kind}:{ident}:{window_start}", window)
        if count <= allowed:
            return True
        self.wait_seconds = max(1, math.ceil(window_start + window - now))
        return False

    def wait(self) -> int | None:
        return self.wait_seconds
