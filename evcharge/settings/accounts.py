"""Accounts and API access: API keys, rate limits, API call log, login lockout."""

from datetime import timedelta

from .base import SECRET_KEY
from .env import env_bool, env_int, env_str

AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out login before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# API keys: secrets are stored as HMAC-SHA256 under this key (see accounts/api_keys.py).
# Changing it invalidates every API key; by default it is the SECRET_KEY.
API_KEY_HASH_KEY = env_str("API_KEY_HASH_KEY") or SECRET_KEY
API_KEY_LAST_USED_EVERY = env_int("API_KEY_LAST_USED_EVERY", 60)  # seconds between last-use writes

# Rate limits per throttle scope (a view's ``throttle_scope``) and kind of caller; None = unlimited.
API_RATE_LIMITS = {
    "default": {
        "user": env_str("RATE_LIMIT_USER", "600/min"),
        "api_key": env_str("RATE_LIMIT_API_KEY", "1200/min"),
        "anon": env_str("RATE_LIMIT_ANON", "60/min"),
    },
    "auth": {
        "user": env_str("RATE_LIMIT_AUTH", "20/min"),
        "api_key": env_str("RATE_LIMIT_AUTH", "20/min"),
        "anon": env_str("RATE_LIMIT_AUTH", "20/min"),
    },
}

# API call log (accounts/call_log.py).
API_CALL_LOG_ENABLED = env_bool("API_CALL_LOG_ENABLED", True)
API_CALL_LOG_RETENTION_DAYS = env_int("API_CALL_LOG_RETENTION_DAYS", 90)
API_CALL_LOG_BATCH_SIZE = env_int("API_CALL_LOG_BATCH_SIZE", 1000)
API_CALL_LOG_SHIP_INTERVAL_MS = env_int("API_CALL_LOG_SHIP_INTERVAL_MS", 200)  # process -> Redis
API_CALL_LOG_BUFFER_MAX = env_int("API_CALL_LOG_BUFFER_MAX", 1_000_000)  # if flushing stops, oldest dropped
API_CALL_LOG_DYNAMODB_TABLE = env_str("API_CALL_LOG_DYNAMODB_TABLE")  # set to also write there
API_CALL_LOG_DYNAMODB_REGION = env_str("API_CALL_LOG_DYNAMODB_REGION")
API_CALL_LOG_DYNAMODB_ENDPOINT_URL = env_str("API_CALL_LOG_DYNAMODB_ENDPOINT_URL")

# Login lockout (django-axes) for the admin and the JWT token endpoint.
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
# Lock the account for this client address: an attacker elsewhere cannot lock a user out.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "accounts.lockout.username_of"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
