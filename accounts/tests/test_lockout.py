"""Repeated failed logins lock the account out for that client, on the API and in the admin."""

import pytest
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "s3cret-pass-word"


def test_the_token_endpoint_locks_out_after_repeated_failures(settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = UserFactory(email="ana@example.com")
    api = APIClient()
    statuses = [
        api.post("/api/v1/auth/token/", {"email": "ana@example.com", "password": "wrong"}).status_code
        for _ in range(2)
    ]
    assert statuses == [401, 401]
    locked = api.post("/api/v1/auth/token/", {"email": "ana@example.com", "password": "wrong"})
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "locked_out"
    assert int(locked["Retry-After"]) > 0
    # Now even the right password is refused for a while.
    right = api.post("/api/v1/auth/token/", {"email": "ANA@example.com", "password": PASSWORD})
    assert right.status_code == 429
    # Another client address is not locked out (an attacker cannot lock the owner out).
    elsewhere = api.post(
        "/api/v1/auth/token/", {"email": "ana@example.com", "password": PASSWORD}, REMOTE_ADDR="198.51.100.7"
    )
    assert elsewhere.status_code == 200, elsewhere.content
    assert user.pk


def test_the_admin_login_locks_out_after_repeated_failures(settings, client):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(email="ops@example.com", is_staff=True, is_superuser=True)
    for _ in range(2):
        response = client.post(
            "/admin/login/?next=/admin/", {"username": "ops@example.com", "password": "no"}
        )
        assert response.status_code == 200  # the form again, with an error
    response = client.post("/admin/login/?next=/admin/", {"username": "ops@example.com", "password": "no"})
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "ops@example.com", "password": PASSWORD}
    )
    assert response.status_code == 429
