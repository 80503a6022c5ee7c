"""Settings come from the environment alone: checked in fresh interpreters with a given env."""

import json
import os
import subprocess
import sys

from conftest import ROOT

PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "debug": settings.DEBUG,
    "db": settings.DATABASES["default"]["ENGINE"],
    "cache": settings.CACHES["default"]["BACKEND"],
    "channels": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "broker": settings.CELERY_BROKER_URL,
    "session_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_secure": settings.CSRF_COOKIE_SECURE,
    "hsts": settings.SECURE_HSTS_SECONDS,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "storage": settings.STORAGES["default"]["BACKEND"],
    "allowed_hosts": settings.ALLOWED_HOSTS,
}))
"""

BASE_ENV_KEYS = ("PATH", "HOME", "LANG")


def probe(tmp_path, **env: str) -> subprocess.CompletedProcess:
    clean = {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}
    clean.update({"DJANGO_SETTINGS_MODULE": "evcharge.settings", "VAR_DIR": str(tmp_path / "var")})
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_embedded_mode_needs_no_server(tmp_path):
    result = probe(tmp_path, DEBUG="1")
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["db"] == "django.db.backends.sqlite3"
    assert seen["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert seen["channels"] == "channels.layers.InMemoryChannelLayer"
    assert seen["broker"] == "filesystem://"
    assert seen["storage"] == "django.core.files.storage.FileSystemStorage"
    assert (tmp_path / "var" / "secret_key").exists()  # made once, outside the code


def test_served_mode_uses_postgres_and_redis_with_production_security(tmp_path):
    result = probe(
        tmp_path,
        SECRET_KEY="k" * 50,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/evcharge",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ALLOWED_HOSTS="api.example.com,ocpp.example.com",
        AWS_STORAGE_BUCKET_NAME="invoices",
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["debug"] is False
    assert seen["db"] == "django.db.backends.postgresql"
    assert seen["cache"] == "django_redis.cache.RedisCache"
    assert seen["channels"] == "channels_redis.core.RedisChannelLayer"
    assert seen["broker"] == "redis://127.0.0.1:6379/0"
    assert seen["session_secure"] is True
    assert seen["csrf_secure"] is True
    assert seen["hsts"] >= 31536000
    assert seen["ssl_redirect"] is True
    assert seen["storage"] == "storages.backends.s3.S3Storage"
    assert seen["allowed_hosts"] == ["api.example.com", "ocpp.example.com"]


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = probe(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/evcharge")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_a_malformed_boolean_is_refused(tmp_path):
    result = probe(tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr
