"""API key format, hashing and the DRF authentication class.

A key looks like ``evk_<prefix>_<secret>``: ``prefix`` is 12 random hex characters stored in
clear to find the row with one indexed lookup; ``secret`` is 32 random bytes (256 bits,
URL-safe base64). Only ``HMAC-SHA256(API_KEY_HASH_KEY, secret)`` is stored.

Why a fast keyed hash and not Argon2: slow hashes protect *low-entropy* secrets (passwords)
against guessing. A 256-bit random secret cannot be guessed whatever the hash speed, so a
slow hash would only add ~50 ms to every partner request. The HMAC key (a setting, not in
the database) means a stolen database dump alone cannot even test a guess. Comparison is
constant-time.

Scopes are enforced twice: here, for every view whatever its ``permission_classes``, and by
``accounts.permissions.ApiKeyScopePermission``.

Last use is recorded at most once a minute per key (``API_KEY_LAST_USED_EVERY`` seconds): an
atomic ``cache.add`` decides which request writes, so busy keys cost no extra DB write per call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions

KEYWORD = "Api-Key"
PREFIX_LENGTH = 12


class ApiKeyUser:
    """``request.user`` for a call made with an API key: authenticated, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key):
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"

    def has_perm(self, perm, obj=None) -> bool:
        return False


def hash_secret(secret: str) -> str:
    key = settings.API_KEY_HASH_KEY.encode()
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def new_key() -> tuple[str, str, str]:
    """(full key to hand out once, prefix, secret hash)."""
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    return f"evk_{prefix}_{secret}", prefix, hash_secret(secret)


def split_key(key: str) -> tuple[str, str] | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "evk" or len(parts[1]) != PREFIX_LENGTH or not parts[2]:
        return None
    return parts[1], parts[2]


def api_key_for(key: str):
    """The usable ApiKey this full key belongs to, or None (unknown, wrong secret, revoked, expired)."""
    from accounts.models import ApiKey

    split = split_key(key)
    if split is None:
        return None
    prefix, secret = split
    api_key = ApiKey.objects.select_related("organization").filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_secret(secret)):
        return None
    return api_key if api_key.is_usable() else None


def record_use(api_key) -> None:
    from accounts.models import ApiKey

    if cache.add(f"api-key:used:{api_key.pk}", 1, timeout=settings.API_KEY_LAST_USED_EVERY):
        now = timezone.now()
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Api-Key evk_...``. ``request.auth`` is the ApiKey, ``request.user`` an ApiKeyUser."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        keyword, _, key = header.partition(" ")
        if keyword != KEYWORD:
            return None
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("No API key given.")
        api_key = api_key_for(key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        self.check_scope(request, api_key)
        record_use(api_key)
        return ApiKeyUser(api_key), api_key

    @staticmethod
    def check_scope(request, api_key) -> None:
        """Scopes are checked here as well as by ``ApiKeyScopePermission``: a view that sets its
        own ``permission_classes`` must not open itself to every key by accident."""
        from accounts.permissions import view_allows_key

        view = (getattr(request, "parser_context", None) or {}).get("view")
        if view is not None and not view_allows_key(view, request.method, api_key):
            raise exceptions.PermissionDenied("This API key's scopes do not allow this call.")

    def authenticate_header(self, request) -> str:
        return KEYWORD
