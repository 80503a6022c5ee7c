import pytest
from django.contrib.auth.models import Group

from accounts.staff_groups import BILLING, NETWORK_OPS, SUPPORT

pytestmark = pytest.mark.django_db


def codenames(name: str) -> set[str]:
    return set(Group.objects.get(name=name).permissions.values_list("content_type__app_label", "codename"))


def test_the_staff_groups_exist_with_their_permissions():
    ops, billing, support = codenames(NETWORK_OPS), codenames(BILLING), codenames(SUPPORT)
    assert {
        ("chargers", "change_chargepoint"),
        ("chargers", "add_site"),
        ("accounts", "change_idtoken"),
    } <= ops
    assert ("accounts", "change_user") not in ops
    assert ("chargers", "view_chargingsession") in billing
    assert ("chargers", "change_chargepoint") not in billing
    assert ("chargers", "view_chargepoint") in support
    assert ("chargers", "change_chargepoint") not in support
    assert ("accounts", "view_apicalllog") in support


def test_models_of_later_apps_join_their_group():
    from django.apps import apps

    billing_models = [m._meta.model_name for m in apps.get_app_config("billing").get_models()]
    if not billing_models:
        pytest.skip("no billing models yet")
    billing = codenames(BILLING)
    assert {("billing", f"change_{m}") for m in billing_models} <= billing
    assert {("billing", f"view_{m}") for m in billing_models} <= codenames(SUPPORT)
