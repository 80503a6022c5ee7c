import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured

from accounts import scoping
from accounts.models import IdToken, Membership, Organization
from accounts.scoping import Actor, scope_queryset
from accounts.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_an_unregistered_model_fails_closed(world):
    with pytest.raises(ImproperlyConfigured, match="not registered"):
        scope_queryset(Group.objects.all(), Actor.for_user(world.a.driver))


def test_registering_twice_differently_is_an_error():
    scoping.register("accounts.IdToken", user="user", organization="organization")  # same: fine
    with pytest.raises(ImproperlyConfigured):
        scoping.register("accounts.IdToken", user="user")


def test_anonymous_sees_nothing(world):
    assert not scope_queryset(IdToken.objects.all(), Actor(user=None)).exists()


def test_a_path_through_a_to_many_relation_lists_each_row_once(world):
    # The owner of A is also a member of B: Organization's user path crosses memberships.
    MembershipFactory(user=world.a.owner, organization=world.b.organization, role=Membership.Role.DRIVER)
    MembershipFactory(user=world.a.owner, organization=world.operator_org, role=Membership.Role.DRIVER)
    names = list(
        scope_queryset(Organization.objects.all(), Actor.for_user(world.a.owner)).values_list(
            "name", flat=True
        )
    )
    assert len(names) == len(set(names))


def test_roles(world):
    def uids(user):
        return set(scope_queryset(IdToken.objects.all(), Actor.for_user(user)).values_list("uid", flat=True))

    a, b = world.a.token.uid, world.b.token.uid
    assert uids(world.a.driver) == {a}
    assert uids(world.a.admin) == {a}
    assert uids(world.a.owner) == {a}
    assert uids(world.b.admin) == {b}
    assert uids(world.loner) == set()
    assert uids(world.staff) == {a, b}
    assert uids(world.operator_member) == {a, b}
    assert set(
        scope_queryset(IdToken.objects.all(), Actor.for_api_key(world.a.api_key)).values_list(
            "uid", flat=True
        )
    ) == {a}


def test_several_paths_per_registration(world, monkeypatch):
    # As if tokens were visible to their driver or to anyone in their organization.
    paths = scoping.TenantPaths(user=("user", "organization__memberships__user"))
    monkeypatch.setitem(scoping._registry, "accounts.idtoken", paths)
    member = MembershipFactory(organization=world.a.organization, role=Membership.Role.MEMBER).user
    visible = scope_queryset(IdToken.objects.all(), Actor.for_user(member))
    assert list(visible.values_list("uid", flat=True)) == [world.a.token.uid]
    assert list(
        scope_queryset(IdToken.objects.all(), Actor.for_user(world.a.driver)).values_list("uid", flat=True)
    ) == [world.a.token.uid]
