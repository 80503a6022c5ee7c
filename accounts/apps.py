from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class AdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin`` whose default site records every change in the audit log."""

    default = False
    default_site = "accounts.audit.AuditedAdminSite"


def _sync_staff_groups(sender, **kwargs) -> None:
    # After every migrate (and test-database flush): models added since migration 0004
    # (billing's, for one) get their permissions into the staff groups.
    from django.contrib.auth.models import Group, Permission

    from accounts.staff_groups import staff_groups_sync

    staff_groups_sync(Group=Group, Permission=Permission)


class AccountsConfig(AppConfig):
    default = True
    name = "accounts"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from accounts import checks, schema, scoping  # noqa: F401  (registrations, checks, OpenAPI)

        # Runs after every app's post_migrate (permissions are created by auth's handler first).
        post_migrate.connect(_sync_staff_groups, dispatch_uid="accounts.staff_groups")
