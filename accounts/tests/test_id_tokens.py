from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEntry, IdToken
from accounts.services import id_token_authorization
from accounts.tests.conftest import jwt_client, key_client
from accounts.tests.factories import IdTokenFactory, UserFactory

pytestmark = pytest.mark.django_db


def ids(response) -> set[int]:
    return {row["id"] for row in response.json()["results"]}


def test_a_driver_lists_only_their_own_tokens(world):
    other_in_same_fleet = IdTokenFactory(organization=world.a.organization, user=world.a.admin)
    response = jwt_client(world.a.driver).get("/api/v1/id-tokens/")
    assert response.status_code == 200
    assert ids(response) == {world.a.token.pk}
    assert other_in_same_fleet.pk in ids(jwt_client(world.a.admin).get("/api/v1/id-tokens/"))


def test_a_fleet_admin_lists_the_fleets_tokens_and_an_operator_all(world):
    assert ids(jwt_client(world.a.admin).get("/api/v1/id-tokens/")) == {world.a.token.pk}
    assert ids(jwt_client(world.staff).get("/api/v1/id-tokens/")) >= {world.a.token.pk, world.b.token.pk}
    assert ids(jwt_client(world.operator_member).get("/api/v1/id-tokens/")) >= {
        world.a.token.pk,
        world.b.token.pk,
    }


def test_a_driver_blocks_their_token_but_may_not_unblock_it(world):
    client = jwt_client(world.a.driver)
    response = client.post(f"/api/v1/id-tokens/{world.a.token.pk}/block/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "Blocked"
    assert id_token_authorization(id_tag=world.a.token.uid) == "Blocked"

    response = client.post(f"/api/v1/id-tokens/{world.a.token.pk}/unblock/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"

    response = jwt_client(world.a.admin).post(f"/api/v1/id-tokens/{world.a.token.pk}/unblock/")
    assert response.status_code == 200
    assert id_token_authorization(id_tag=world.a.token.uid) == "Accepted"
    actions = list(
        AuditEntry.objects.filter(object_id=str(world.a.token.pk)).values_list("action", flat=True)
    )
    assert "id_token.block" in actions
    assert "id_token.unblock" in actions


def test_another_tenant_cannot_block_and_gets_404(world):
    response = jwt_client(world.b.admin).post(f"/api/v1/id-tokens/{world.a.token.pk}/block/")
    assert response.status_code == 404
    world.a.token.refresh_from_db()
    assert world.a.token.status == IdToken.Status.ACCEPTED


def test_a_fleet_admin_issues_a_token_for_a_member(world):
    response = jwt_client(world.a.admin).post(
        "/api/v1/id-tokens/",
        {
            "uid": "04A1B2C3D4",
            "organization": world.a.organization.pk,
            "user": world.a.driver.pk,
            "label": "van 7",
        },
    )
    assert response.status_code == 201, response.content
    token = IdToken.objects.get(uid="04A1B2C3D4")
    assert token.organization == world.a.organization
    assert token.user == world.a.driver
    assert id_token_authorization(id_tag="04a1b2c3d4") == "Accepted"  # idTags are case-insensitive


def test_issuing_for_another_fleet_or_its_people_is_refused(world):
    client = jwt_client(world.a.admin)
    response = client.post("/api/v1/id-tokens/", {"uid": "X1", "organization": world.b.organization.pk})
    assert response.status_code == 400  # the other fleet does not exist for this caller
    assert "organization" in response.json()["error"]["details"]
    response = client.post(
        "/api/v1/id-tokens/",
        {"uid": "X2", "organization": world.a.organization.pk, "user": world.b.driver.pk},
    )
    assert response.status_code == 400
    assert not IdToken.objects.filter(uid__in=["X1", "X2"]).exists()


def test_a_driver_may_not_issue_tokens(world):
    response = jwt_client(world.a.driver).post(
        "/api/v1/id-tokens/", {"uid": "MINE", "organization": world.a.organization.pk}
    )
    assert response.status_code == 403
    assert not IdToken.objects.filter(uid="MINE").exists()


def test_a_duplicate_idtag_is_409_whatever_its_case(world):
    response = jwt_client(world.staff).post("/api/v1/id-tokens/", {"uid": world.a.token.uid.lower()})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "id_token_exists"


def test_an_api_key_issues_tokens_for_its_organization(world):
    response = key_client(world.a.key).post(
        "/api/v1/id-tokens/", {"uid": "PARTNER1", "organization": world.a.organization.pk}
    )
    assert response.status_code == 201, response.content
    assert AuditEntry.objects.get(
        action="id_token.issue", object_id=str(response.json()["id"])
    ).actor_repr == (f"api-key:{world.a.api_key.prefix}")


def test_authorization_statuses_for_ocpp():
    user = UserFactory()
    IdTokenFactory(uid="OK", user=user)
    IdTokenFactory(uid="BLOCKED", status=IdToken.Status.BLOCKED)
    IdTokenFactory(uid="OLD", expires_at=timezone.now() - timedelta(seconds=1))
    IdTokenFactory(uid="SOON", expires_at=timezone.now() + timedelta(days=1))
    gone = UserFactory(is_active=False)
    IdTokenFactory(uid="GONE", user=gone)
    assert id_token_authorization(id_tag="OK") == "Accepted"
    assert id_token_authorization(id_tag="BLOCKED") == "Blocked"
    assert id_token_authorization(id_tag="OLD") == "Expired"
    assert id_token_authorization(id_tag="SOON") == "Accepted"
    assert id_token_authorization(id_tag="GONE") == "Blocked"
    assert id_token_authorization(id_tag="NEVER-SEEN") == "Invalid"


def test_the_token_list_costs_a_fixed_number_of_queries(world, django_assert_num_queries):
    for _ in range(5):
        IdTokenFactory(organization=world.a.organization)
    client = jwt_client(world.a.admin)
    # user, the actor's memberships, count, page
    with django_assert_num_queries(4):
        assert client.get("/api/v1/id-tokens/").status_code == 200


def test_the_database_refuses_the_same_idtag_in_another_case():
    from django.db import IntegrityError, transaction

    IdTokenFactory(uid="CaseTag")
    with pytest.raises(IntegrityError), transaction.atomic():
        IdToken.objects.create(uid="casetag")
