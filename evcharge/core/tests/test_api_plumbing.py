import gzip
import json

import pytest
from rest_framework.test import APIClient

from accounts.models import User

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


@pytest.fixture
def user():
    return User.objects.create_user(email="Driver@Example.com", password=PASSWORD, full_name="Dana Driver")


@pytest.fixture
def api():
    return APIClient()


def test_jwt_obtain_with_email_and_password_then_use_and_refresh(api, user):
    response = api.post("/api/v1/auth/token/", {"email": "driver@example.com", "password": PASSWORD})
    assert response.status_code == 200, response.content
    tokens = response.json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    me = api.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["email"] == "driver@example.com"
    assert me.json()["date_joined"].endswith("Z")  # ISO 8601, UTC

    refreshed = APIClient().post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]})
    assert refreshed.status_code == 200
    assert refreshed.json()["access"] != ""


def test_wrong_password_is_401_in_the_envelope(api, user):
    response = api.post("/api/v1/auth/token/", {"email": "driver@example.com", "password": "nope"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "no_active_account"
    assert error["message"]


def test_missing_field_is_400_with_field_details(api):
    response = api.post("/api/v1/auth/token/", {"email": "x@example.com"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    assert "password" in body["error"]["details"]


def test_malformed_json_is_400_not_500(api):
    response = api.generic("POST", "/api/v1/auth/token/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_unauthenticated_is_401_in_the_envelope(api):
    response = api.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_unknown_api_route_is_json_404(api, settings):
    settings.DEBUG = False
    response = api.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_wrong_method_is_405_in_the_envelope(api, user):
    api.force_authenticate(user)
    response = api.delete("/api/v1/me/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_openapi_schema_lists_the_api(api):
    response = api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/auth/token/" in schema["paths"]
    assert "/api/v1/me/" in schema["paths"]


def test_swagger_ui_is_served_without_a_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr" not in html
    assert "unpkg.com" not in html


def test_responses_are_gzipped_when_asked(api):
    response = api.get("/api/schema/", {"format": "json"}, HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(response.content))["openapi"].startswith("3.")


def test_lists_are_paginated_with_next(api, user):
    from chargers.tests.factories import ChargePointFactory

    for _ in range(3):
        ChargePointFactory()
    api.force_authenticate(user)
    first = api.get("/api/v1/chargers/", {"page_size": 2}).json()
    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert first["next"].endswith("page=2&page_size=2")
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 1
    assert second["next"] is None
    assert {r["id"] for r in first["results"]}.isdisjoint({r["id"] for r in second["results"]})
