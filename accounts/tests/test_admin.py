"""The admin works for every registered model (the default site is the audited one), and the
accounts pages do what operators need."""

import pytest
from django.contrib import admin
from django.urls import reverse

from accounts.models import AuditEntry, IdToken
from accounts.tests.factories import IdTokenFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_every_admin_changelist_and_add_page_opens(operator_client):
    from accounts.audit import AuditedAdminSite, AuditedModelAdminMixin

    assert isinstance(admin.site, AuditedAdminSite)
    for model, model_admin in admin.site._registry.items():
        assert isinstance(model_admin, AuditedModelAdminMixin), model
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        assert operator_client.get(changelist).status_code == 200, changelist
        add = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
        assert operator_client.get(add).status_code in {200, 403}, add  # 403: read-only models


def test_call_log_filters(operator_client):
    url = reverse("admin:accounts_apicalllog_changelist")
    for query in ("?method__exact=GET", "?status__exact=404", "?q=abc", "?route__exact=api/v1/me/"):
        assert operator_client.get(url + query).status_code == 200, query


def test_block_action_goes_through_the_service(operator_client):
    token = IdTokenFactory()
    response = operator_client.post(
        reverse("admin:accounts_idtoken_changelist"),
        {"action": "block", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.status == IdToken.Status.BLOCKED
    assert AuditEntry.objects.filter(action="id_token.block", object_id=str(token.pk)).exists()
