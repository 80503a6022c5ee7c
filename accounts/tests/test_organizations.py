import pytest

from accounts.models import Membership, User
from accounts.tests.conftest import jwt_client, key_client

pytestmark = pytest.mark.django_db


def test_me_lists_memberships(world):
    response = jwt_client(world.a.admin).get("/api/v1/me/")
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == world.a.admin.email
    assert body["is_operator"] is False
    assert body["memberships"] == [
        {
            "organization": {
                "id": world.a.organization.pk,
                "name": "Fleet A",
                "kind": "fleet",
                "created_at": body["memberships"][0]["organization"]["created_at"],
            },
            "role": "admin",
        }
    ]
    assert jwt_client(world.operator_member).get("/api/v1/me/").json()["is_operator"] is True


def test_me_is_for_people_not_api_keys(world):
    assert key_client(world.a.key).get("/api/v1/me/").status_code == 403


def test_an_admin_lists_all_members_a_driver_only_themselves(world):
    url = f"/api/v1/organizations/{world.a.organization.pk}/members/"
    admin_view = {row["user"]["email"] for row in jwt_client(world.a.admin).get(url).json()["results"]}
    assert admin_view == {world.a.owner.email, world.a.admin.email, world.a.driver.email}
    driver_view = {row["user"]["email"] for row in jwt_client(world.a.driver).get(url).json()["results"]}
    assert driver_view == {world.a.driver.email}
    assert jwt_client(world.b.admin).get(url).status_code == 404


def test_an_admin_adds_changes_and_removes_a_member(world):
    client = jwt_client(world.a.admin)
    url = f"/api/v1/organizations/{world.a.organization.pk}/members/"
    response = client.post(url, {"email": "New.Driver@Example.com", "role": "driver"})
    assert response.status_code == 201, response.content
    member_id = response.json()["id"]
    new_user = User.objects.get(email="new.driver@example.com")
    assert not new_user.has_usable_password()

    response = client.patch(f"{url}{member_id}/", {"role": "member"})
    assert response.status_code == 200
    assert Membership.objects.get(pk=member_id).role == "member"

    assert client.delete(f"{url}{member_id}/").status_code == 204
    assert not Membership.objects.filter(pk=member_id).exists()


def test_only_owners_grant_owner_and_the_last_owner_stays(world):
    url = f"/api/v1/organizations/{world.a.organization.pk}/members/"
    admin_membership = world.a.admin.memberships.get()
    owner_membership = world.a.owner.memberships.get()

    response = jwt_client(world.a.admin).patch(f"{url}{admin_membership.pk}/", {"role": "owner"})
    assert response.status_code == 403

    owner = jwt_client(world.a.owner)
    response = owner.delete(f"{url}{owner_membership.pk}/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_owner"
    response = owner.patch(f"{url}{owner_membership.pk}/", {"role": "admin"})
    assert response.status_code == 409

    assert owner.patch(f"{url}{admin_membership.pk}/", {"role": "owner"}).status_code == 200
    assert owner.patch(f"{url}{owner_membership.pk}/", {"role": "admin"}).status_code == 200


def test_a_driver_cannot_manage_members(world):
    url = f"/api/v1/organizations/{world.a.organization.pk}/members/"
    response = jwt_client(world.a.driver).post(url, {"email": "x@example.com", "role": "admin"})
    assert response.status_code == 403
    assert not User.objects.filter(email="x@example.com").exists()
