"""Which ocpp process holds a charger's socket: identity → channel name, in the cache (Redis).

Commands are sent to that one channel (not a group broadcast: channels-redis groups are slow
and lossy at scale). The entry expires if its process dies without cleaning up, so a command
to a charger whose process vanished fails as offline instead of waiting for nobody.
"""

from __future__ import annotations

from django.core.cache import cache


def _key(identity: str) -> str:
    return f"ocpp:channel:{identity}"


def ttl_for(heartbeat_interval: int) -> int:
    return max(2 * heartbeat_interval + 60, 300)


def claim(identity: str, channel_name: str, ttl: int) -> str | None:
    """Make ``channel_name`` the holder of ``identity``; returns the previous holder, if any."""
    previous = cache.get(_key(identity))
    cache.set(_key(identity), channel_name, ttl)
    return previous if previous != channel_name else None


def refresh(identity: str, channel_name: str, ttl: int) -> None:
    if not cache.touch(_key(identity), ttl):
        cache.set(_key(identity), channel_name, ttl)


def holder(identity: str) -> str | None:
    return cache.get(_key(identity))


def release(identity: str, channel_name: str) -> bool:
    """Forget the holder if it is still ``channel_name``; True if it was (we were the newest)."""
    if cache.get(_key(identity)) == channel_name:
        cache.delete(_key(identity))
        return True
    return False
