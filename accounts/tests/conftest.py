"""A small world of tenants: two fleets (A and B), each with an owner, an admin, a driver, a
token and an API key; an operator organization with a member; a staff operator."""

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts import services
from accounts.models import ApiKey, ApiKeyScope, IdToken, Membership, Organization, User
from accounts.scoping import Actor
from accounts.tests.factories import IdTokenFactory, MembershipFactory, OrganizationFactory, UserFactory


@pytest.fixture(autouse=True)
def _empty_call_log_buffer():
    """Entries of earlier tests (any app's) may still be on their way to Redis: ship and drop them."""
    from django.core.cache import cache
    from django_redis import get_redis_connection

    from accounts import call_log

    call_log.drain()
    redis = get_redis_connection("default")
    redis.delete(*(cache.make_key(key) for key in (call_log.BUFFER, call_log.IN_FLIGHT, call_log.LOCK)))


@dataclass
class Tenant:
    organization: Organization
    owner: User
    admin: User
    driver: User
    token: IdToken
    api_key: ApiKey
    key: str


@dataclass
class World:
    a: Tenant
    b: Tenant
    staff: User
    operator_member: User
    operator_org: Organization
    loner: User  # a person in no organization


def make_tenant(name: str, staff: User) -> Tenant:
    organization = OrganizationFactory(name=name, kind=Organization.Kind.FLEET)
    owner = MembershipFactory(organization=organization, role=Membership.Role.OWNER).user
    admin = MembershipFactory(organization=organization, role=Membership.Role.ADMIN).user
    driver = MembershipFactory(organization=organization, role=Membership.Role.DRIVER).user
    token = IdTokenFactory(organization=organization, user=driver)
    api_key, key = services.api_key_create(
        actor=Actor.for_user(staff),
        organization=organization,
        name=f"{name} partner",
        scopes=[
            ApiKeyScope.ACCOUNTS_WRITE,
            ApiKeyScope.CHARGERS_READ,
            ApiKeyScope.SESSIONS_READ,
            ApiKeyScope.BILLING_READ,
        ],
    )
    return Tenant(organization, owner, admin, driver, token, api_key, key)


@pytest.fixture
def world(db) -> World:
    staff = UserFactory(is_staff=True)
    operator_org = OrganizationFactory(name="The Operator", kind=Organization.Kind.OPERATOR)
    operator_member = MembershipFactory(organization=operator_org, role=Membership.Role.MEMBER).user
    return World(
        a=make_tenant("Fleet A", staff),
        b=make_tenant("Fleet B", staff),
        staff=staff,
        operator_member=operator_member,
        operator_org=operator_org,
        loner=UserFactory(),
    )


def jwt_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client
