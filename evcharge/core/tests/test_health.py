import pytest

from evcharge.celery import app as celery_app

pytestmark = pytest.mark.django_db

CLOSED_PORT = "127.0.0.1:1"  # nothing listens here: a dependency that is down


def test_live_answers_ok(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_each_dependency_up(client):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "up",
        "cache": "up",
        "broker": "up",
    }


def test_ready_is_503_when_the_cache_is_down(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{CLOSED_PORT}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }
    response = client.get("/health/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["cache"]["status"] == "down"
    assert "Connection" in checks["cache"]["error"]
    assert checks["database"]["status"] == "up"
    assert checks["broker"]["status"] == "up"


def test_ready_is_503_when_the_broker_is_down(client):
    original = celery_app.conf.broker_url
    celery_app.conf.broker_url = f"redis://{CLOSED_PORT}/0"
    try:
        response = client.get("/health/ready")
    finally:
        celery_app.conf.broker_url = original
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["status"] == "down"
    assert checks["database"]["status"] == "up"
    assert checks["cache"]["status"] == "up"


def test_health_is_not_redirected_to_https_in_production(client, settings):
    # The load balancer probes over plain HTTP; everything else is redirected.
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/health/live").status_code == 200
    assert client.get("/api/v1/me/").status_code == 301


def test_metrics_are_prometheus_text(client):
    client.get("/health/live")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE django_http_requests_total_by_method_total counter" in text
    assert 'django_http_requests_total_by_method_total{method="GET"}' in text
