import pytest
from django.db import DatabaseError, connection, transaction

from accounts.models import AuditEntry, IdToken
from accounts.services import audit_record
from accounts.tests.factories import IdTokenFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry():
    user = UserFactory()
    token = IdTokenFactory()
    return audit_record(
        actor=user,
        action="tariff.update",
        obj=token,
        before={"price": "0.39"},
        after={"price": "0.42"},
        source="api",
    )


def test_audit_record_keeps_actor_action_object_and_before_after(entry):
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.actor_repr == stored.actor.email
    assert stored.content_type.model == "idtoken"
    assert stored.object_repr == IdToken.objects.get(pk=stored.object_id).uid
    assert (stored.before, stored.after, stored.source) == ({"price": "0.39"}, {"price": "0.42"}, "api")


def test_the_model_refuses_updates_and_deletes(entry):
    entry.action = "something else"
    with pytest.raises(TypeError):
        entry.save()
    with pytest.raises(TypeError):
        entry.delete()
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).update(action="x")
    with pytest.raises(TypeError):
        AuditEntry.objects.filter(pk=entry.pk).delete()


def test_the_database_refuses_updates_and_deletes(entry):
    for sql in (
        "UPDATE accounts_auditentry SET action = 'x' WHERE id = %s",
        "DELETE FROM accounts_auditentry WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [entry.pk])
    assert AuditEntry.objects.get(pk=entry.pk).action == "tariff.update"


def test_every_admin_change_is_audited_with_before_and_after(client):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    token = IdTokenFactory(uid="ADMIN1", label="old")
    response = client.post(
        f"/admin/accounts/idtoken/{token.pk}/change/",
        {
            "uid": "ADMIN1",
            "type": "RFID",
            "status": "Blocked",
            "label": "lost card",
            "parent_id_tag": "",
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 302, response.content
    entry = AuditEntry.objects.get(action="update", object_id=str(token.pk))
    assert entry.actor == operator
    assert entry.source == "admin"
    assert (entry.before["status"], entry.after["status"]) == ("Accepted", "Blocked")
    assert (entry.before["label"], entry.after["label"]) == ("old", "lost card")

    client.post(f"/admin/accounts/idtoken/{token.pk}/delete/", {"post": "yes"})
    deleted = AuditEntry.objects.get(action="delete", object_id=str(token.pk))
    assert deleted.before["uid"] == "ADMIN1"
    assert deleted.after is None


def test_secrets_are_redacted_in_snapshots(client):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    driver = UserFactory(email="d@example.com")
    client.post(
        f"/admin/accounts/user/{driver.pk}/change/",
        {
            "email": "d@example.com",
            "full_name": "Dee",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    entry = AuditEntry.objects.get(action="update", object_id=str(driver.pk))
    assert entry.after["full_name"] == "Dee"
    assert entry.after["password"] == "***"


def test_the_audit_log_is_read_only_in_the_admin(client, entry):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get("/admin/accounts/auditentry/").status_code == 200
    assert client.get("/admin/accounts/auditentry/add/").status_code == 403
    assert client.post(f"/admin/accounts/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403


def test_audited_context_records_the_row_before_and_after():
    from accounts.audit import audited

    operator = UserFactory(is_staff=True)
    token = IdTokenFactory(label="before")
    with transaction.atomic(), audited(actor=operator, action="id_token.relabel", obj=token, source="api"):
        token.label = "after"
        token.save(update_fields=["label"])
    entry = AuditEntry.objects.get(action="id_token.relabel")
    assert (entry.before["label"], entry.after["label"]) == ("before", "after")
    assert entry.actor == operator


def test_nothing_is_recorded_when_the_change_fails():
    from accounts.audit import audited

    token = IdTokenFactory(label="before")

    def relabel_then_fail():
        with transaction.atomic(), audited(actor=None, action="x", obj=token):
            token.label = "after"
            token.save(update_fields=["label"])
            raise RuntimeError("the change fails")

    with pytest.raises(RuntimeError):
        relabel_then_fail()
    assert not AuditEntry.objects.filter(action="x").exists()
    token.refresh_from_db()
    assert token.label == "before"


def test_an_admin_password_change_is_audited(client):
    operator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(operator)
    driver = UserFactory()
    response = client.post(
        f"/admin/accounts/user/{driver.pk}/password/",
        {
            "password1": "a-new-long-pass-phrase",
            "password2": "a-new-long-pass-phrase",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content
    entry = AuditEntry.objects.get(action="password.set", object_id=str(driver.pk))
    assert entry.actor == operator
