import io
import json
import logging
import re

import pytest

from evcharge.core.request_id import RequestIdLogFilter

pytestmark = pytest.mark.django_db


def test_incoming_request_id_is_returned(client):
    response = client.get("/health/live", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"


def test_request_id_is_made_when_missing(client):
    response = client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


@pytest.mark.parametrize("bad", ["x" * 200, "has space", "semi;colon", "<script>"])
def test_unsafe_request_id_is_replaced(client, bad):
    response = client.get("/health/live", HTTP_X_REQUEST_ID=bad)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_error_envelope_carries_the_request_id(client):
    response = client.get("/api/v1/me/", HTTP_X_REQUEST_ID="req-42")
    assert response.json()["request_id"] == "req-42"


def test_log_lines_are_json_with_the_request_id(client, settings):
    # The same formatter and filter as settings.LOGGING, on a stream we can read.
    from pythonjsonlogger.json import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    formatter = settings.LOGGING["formatters"]["json"]
    handler.setFormatter(JsonFormatter(formatter["fmt"], rename_fields=formatter["rename_fields"]))
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("django.request")  # Django logs every 4xx here
    logger.addHandler(handler)
    try:
        client.get("/api/v1/me/", HTTP_X_REQUEST_ID="trace-7")
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[0])
    assert line["request_id"] == "trace-7"
    assert line["level"] == "WARNING"
    assert line["logger"] == "django.request"
    assert "Unauthorized" in line["message"]
