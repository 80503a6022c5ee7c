"""API key lifecycle: created (shown once, stored hashed), used, scoped, last use recorded, revoked."""

import pytest
from django.core.cache import cache

from accounts import api_keys
from accounts.models import ApiKey, AuditEntry
from accounts.tests.conftest import jwt_client, key_client

pytestmark = pytest.mark.django_db


def test_lifecycle_through_the_api(world):
    admin = jwt_client(world.a.admin)
    response = admin.post(
        "/api/v1/api-keys/",
        {"name": "Roaming hub", "organization": world.a.organization.pk, "scopes": ["accounts:read"]},
    )
    assert response.status_code == 201, response.content
    created = response.json()
    key = created["key"]
    assert key.startswith(f"evk_{created['prefix']}_")

    stored = ApiKey.objects.get(pk=created["id"])
    secret = key.split("_", 2)[2]
    assert secret not in stored.secret_hash
    assert stored.secret_hash == api_keys.hash_secret(secret)
    assert stored.created_by == world.a.admin

    # Shown once: neither the list nor the detail carries it again.
    detail = admin.get(f"/api/v1/api-keys/{created['id']}/").json()
    assert "key" not in detail
    assert key not in admin.get("/api/v1/api-keys/").content.decode()

    partner = key_client(key)
    tokens = partner.get("/api/v1/id-tokens/")
    assert tokens.status_code == 200
    assert {row["id"] for row in tokens.json()["results"]} == {world.a.token.pk}
    stored.refresh_from_db()
    assert stored.last_used_at is not None

    # Read scope only: writing is refused.
    response = partner.post(f"/api/v1/id-tokens/{world.a.token.pk}/block/")
    assert response.status_code == 403

    response = admin.post(f"/api/v1/api-keys/{created['id']}/revoke/")
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert response.json()["is_active"] is False
    response = partner.get("/api/v1/id-tokens/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert set(AuditEntry.objects.filter(object_id=str(created["id"])).values_list("action", flat=True)) == {
        "api_key.create",
        "api_key.revoke",
    }


def test_wrong_secret_unknown_prefix_and_garbage_are_401(world):
    prefix = world.a.api_key.prefix
    for header in [
        f"Api-Key evk_{prefix}_wrong-secret",
        "Api-Key evk_000000000000_x",
        "Api-Key nonsense",
        "Api-Key ",
    ]:
        client = key_client("")
        client.credentials(HTTP_AUTHORIZATION=header)
        assert client.get("/api/v1/id-tokens/").status_code == 401, header


def test_a_key_without_the_area_scope_is_refused(world):
    _api_key, key = _key_for(world, ["chargers:read"])
    assert key_client(key).get("/api/v1/id-tokens/").status_code == 403


def _key_for(world, scopes):
    from accounts.scoping import Actor
    from accounts.services import api_key_create

    return api_key_create(
        actor=Actor.for_user(world.staff), organization=world.a.organization, name="k", scopes=scopes
    )


def test_last_use_is_written_at_most_once_a_minute(world):
    api_key, key = _key_for(world, ["accounts:read"])
    client = key_client(key)
    client.get("/api/v1/organizations/")
    api_key.refresh_from_db()
    first = api_key.last_used_at
    assert first is not None
    for _ in range(3):
        client.get("/api/v1/organizations/")
    api_key.refresh_from_db()
    assert api_key.last_used_at == first  # no write within the minute
    cache.delete(f"api-key:used:{api_key.pk}")  # the minute is over
    client.get("/api/v1/organizations/")
    api_key.refresh_from_db()
    assert api_key.last_used_at > first


def test_api_keys_cannot_manage_api_keys(world):
    response = key_client(world.a.key).post(
        "/api/v1/api-keys/",
        {"name": "x", "organization": world.a.organization.pk, "scopes": ["accounts:read"]},
    )
    assert response.status_code == 403


def test_a_driver_cannot_create_keys_and_another_fleet_is_invisible(world):
    body = {"name": "x", "organization": world.a.organization.pk, "scopes": ["accounts:read"]}
    assert jwt_client(world.a.driver).post("/api/v1/api-keys/", body).status_code == 403
    response = jwt_client(world.b.admin).post("/api/v1/api-keys/", body)
    assert response.status_code == 400
    assert "organization" in response.json()["error"]["details"]


def test_unknown_scopes_are_refused(world):
    response = jwt_client(world.a.admin).post(
        "/api/v1/api-keys/", {"name": "x", "organization": world.a.organization.pk, "scopes": ["root"]}
    )
    assert response.status_code == 400


def test_the_admin_shows_the_secret_once(world, client):
    client.force_login(world.staff)
    world.staff.is_superuser = True
    world.staff.save()
    response = client.post(
        "/admin/accounts/apikey/add/",
        {
            "name": "Hub",
            "organization": world.a.organization.pk,
            "scopes": ["sessions:read"],
            "expires_at": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) >= 1
    key = next(m.split(": ")[-1] for m in shown if "evk_" in m)
    api_key = ApiKey.objects.get(name="Hub")
    assert api_keys.api_key_for(key) == api_key
    assert api_key.scopes == ["sessions:read"]
    page = client.get(f"/admin/accounts/apikey/{api_key.pk}/change/").content.decode()
    assert key not in page
    assert AuditEntry.objects.filter(action="api_key.create", object_id=str(api_key.pk)).exists()
