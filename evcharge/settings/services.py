"""Cache, channel layer and Celery: Redis when ``REDIS_URL`` is set, in-process stand-ins otherwise."""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from .base import REDIS_URL, VAR_DIR
from .env import env_int, env_str

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "evcharge"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 reads with a 5 s socket timeout by default, the same as channels-redis'
                # blocking BRPOP: every idle consumer would die after 5 s. Give reads room.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": env_str("CHANNEL_LAYER_PREFIX", "evcharge-asgi"),
                "capacity": 1000,
                "expiry": 60,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery ---------------------------------------------------------------------------
# Without Redis the broker is a folder: worker and beat run as separate processes on one
# machine with no server at all (kombu's file-system transport).
_broker_dir = VAR_DIR / "celery-broker"
if REDIS_URL:
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
    _broker_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(VAR_DIR / "celery-control"),
    }
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_RESULT_EXPIRES = timedelta(hours=1)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 25 * 60)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep our JSON log format in workers

# Periodic jobs, declared here; the beat process copies them into django-celery-beat's
# tables on start, where operators see them in the admin and may pause or retime them.
# Billing accounts invoiced per transaction by the billing cycle (all or none of a batch commit).
BILLING_CYCLE_BATCH = env_int("BILLING_CYCLE_BATCH", 500)
# Finished sessions priced per transaction by the CDR sweep (one COPY of their CDRs). Each
# call has a fixed cost (tariffs resolved and snapshotted, four queries: about 7 ms), so larger
# batches cost less a session: 1,000,000 sessions priced in 24.4 s at 2,000, 22.7 s at 5,000.
BILLING_CDR_BATCH = env_int("BILLING_CDR_BATCH", 5000)
if BILLING_CDR_BATCH < 1:
    raise ImproperlyConfigured(f"BILLING_CDR_BATCH must be at least 1, got {BILLING_CDR_BATCH}")

CELERY_BEAT_SCHEDULE = {
    "housekeeping.clear-expired-sessions": {
        "task": "evcharge.core.tasks.clear_expired_sessions",
        "schedule": timedelta(hours=6),
    },
    # Closes ended billing periods (one invoice per account and period, exactly once), one task
    # per BILLING_CYCLE_BATCH accounts on any free worker; hourly so each account's local
    # midnight is caught within the hour.
    "billing.cycle": {
        "task": "billing.tasks.billing_cycle_fan_out",
        "schedule": timedelta(hours=1),
    },
    # Prices finished sessions whose pricing message was lost (the OCPP side sends one per stop):
    # every 15 minutes the stops of the last two days (by index), daily every finished session
    # (for what could not be priced for longer, e.g. while no default tariff existed).
    "billing.cdr-sweep": {
        "task": "billing.tasks.cdr_sweep",
        "schedule": timedelta(minutes=15),
        "kwargs": {"lookback_hours": 48},
    },
    "billing.cdr-sweep-all": {
        "task": "billing.tasks.cdr_sweep",
        "schedule": timedelta(hours=24),
    },
    "accounts.api-call-log-flush": {
        "task": "accounts.tasks.api_call_log_flush",
        "schedule": timedelta(seconds=10),
    },
    "accounts.api-call-log-purge": {
        "task": "accounts.tasks.api_call_log_purge",
        "schedule": timedelta(hours=24),
    },
}
