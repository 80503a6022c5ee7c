"""The OCPP central system."""

from .env import env_bool, env_int

# Unknown identities: refuse at the handshake (False) or admit them as Pending (True).
OCPP_PENDING_REGISTRATION = env_bool("OCPP_PENDING_REGISTRATION", False)
OCPP_CALL_TIMEOUT_SECONDS = env_int("OCPP_CALL_TIMEOUT_SECONDS", 30)
OCPP_COMMAND_MAX_WAIT_SECONDS = env_int("OCPP_COMMAND_MAX_WAIT_SECONDS", 30)
OCPP_REMOTE_START_WINDOW_SECONDS = env_int("OCPP_REMOTE_START_WINDOW_SECONDS", 300)
OCPP_MAX_FRAME_BYTES = env_int("OCPP_MAX_FRAME_BYTES", 65536)
OCPP_MESSAGE_LOG = env_bool("OCPP_MESSAGE_LOG", True)
OCPP_MESSAGE_LOG_RETENTION_DAYS = env_int("OCPP_MESSAGE_LOG_RETENTION_DAYS", 30)
OCPP_AUTHORIZATION_RETENTION_DAYS = env_int("OCPP_AUTHORIZATION_RETENTION_DAYS", 90)
OCPP_LOG_FLUSH_SECONDS = float(env_int("OCPP_LOG_FLUSH_MS", 1000)) / 1000
# Status polling (Celery beat): stale status, silent sessions.
OCPP_STATUS_STALE_SECONDS = env_int("OCPP_STATUS_STALE_SECONDS", 3600)
OCPP_SESSION_SILENT_HOURS = env_int("OCPP_SESSION_SILENT_HOURS", 3)
OCPP_AUTHORIZED_NOT_STARTED_SECONDS = env_int("OCPP_AUTHORIZED_NOT_STARTED_SECONDS", 300)

# Periodic jobs of the charging network, added to the one schedule (see services.py).
from datetime import timedelta  # noqa: E402

from .services import CELERY_BEAT_SCHEDULE  # noqa: E402

CELERY_BEAT_SCHEDULE.update(
    {
        "chargers.poll-status": {
            "task": "chargers.tasks.poll_charger_status",
            "schedule": timedelta(seconds=env_int("OCPP_POLL_SECONDS", 60)),
        },
        "chargers.purge-ocpp-messages": {
            "task": "chargers.tasks.purge_ocpp_messages",
            "schedule": timedelta(hours=24),
        },
    }
)

# `make run` also starts the simulator, so a newcomer sees live statuses and sessions.
RUNPLATFORM_EXTRA_PROCESSES = {
    "simulator": ["simulate_chargers", "--demo", "--session-seconds", "90", "--idle-seconds", "20"],
}
