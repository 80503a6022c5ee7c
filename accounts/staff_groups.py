"""The operator staff groups and their Django permissions, declared once.

``GROUPS`` maps a group name to ``(app_label, model or "*", actions)`` grants. Migration 0004
creates the groups; ``staff_groups_sync`` also runs after every ``migrate`` (``post_migrate``,
see ``accounts.apps``), so a model added later (billing's tariffs and invoices) joins its
group's permissions without a new data migration. The sync only adds: permissions an
operator granted by hand in the admin are left alone.
"""

from collections.abc import Iterable

NETWORK_OPS = "Network operations"
BILLING = "Billing"
SUPPORT = "Support"

ALL = ("add", "change", "delete", "view")
VIEW = ("view",)
VIEW_CHANGE = ("view", "change")

GROUPS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    NETWORK_OPS: [
        ("chargers", "*", ALL),
        ("accounts", "idtoken", ALL),
        ("accounts", "organization", VIEW),
        ("accounts", "user", VIEW),
        ("accounts", "apicalllog", VIEW),
        ("accounts", "auditentry", VIEW),
    ],
    BILLING: [
        ("billing", "*", ALL),
        ("chargers", "chargingsession", VIEW),
        ("chargers", "site", VIEW),
        ("accounts", "organization", VIEW_CHANGE),
        ("accounts", "user", VIEW),
        ("accounts", "idtoken", VIEW),
        ("accounts", "auditentry", VIEW),
    ],
    SUPPORT: [
        ("chargers", "*", VIEW),
        ("billing", "*", VIEW),
        ("accounts", "idtoken", VIEW_CHANGE),
        ("accounts", "user", VIEW),
        ("accounts", "organization", VIEW),
        ("accounts", "membership", VIEW),
        ("accounts", "apikey", VIEW),
        ("accounts", "apicalllog", VIEW),
    ],
}


def _codenames(grants: Iterable[tuple[str, str, tuple[str, ...]]], Permission) -> list:
    permissions = []
    for app_label, model, actions in grants:
        rows = Permission.objects.filter(content_type__app_label=app_label)
        if model != "*":
            rows = rows.filter(content_type__model=model)
        for permission in rows:
            if permission.codename.split("_", 1)[0] in actions:
                permissions.append(permission)
    return permissions


def staff_groups_sync(*, Group, Permission) -> None:
    """Create the staff groups and add their permissions (model classes passed in, so a
    migration can hand in its historical models)."""
    for name, grants in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*_codenames(grants, Permission))
