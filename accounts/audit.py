"""Snapshots for the audit log, and the admin hook that records every admin change.

``AuditedAdminSite`` is the project's default admin site (``accounts.apps.AdminConfig``
replaces ``django.contrib.admin`` in ``INSTALLED_APPS``): every ModelAdmin registered on it,
in any app, now or later, records additions, changes and deletions with before/after
snapshots through ``accounts.services.audit_record``. No admin class needs to opt in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib import admin
from django.core import serializers
from django.db.models import Model

REDACTED = "***"
_SENSITIVE = ("password", "secret", "hash")


def audit_snapshot(obj: Model | None) -> dict[str, Any] | None:
    """The object's concrete fields and many-to-many ids as JSON-safe data; secrets redacted."""
    if obj is None or obj.pk is None:
        return None
    data = json.loads(serializers.serialize("json", [obj]))[0]["fields"]
    return {
        name: (REDACTED if any(word in name for word in _SENSITIVE) and value else value)
        for name, value in data.items()
    }


@contextmanager
def audited(*, actor, action: str, obj: Model, source: str = "") -> Iterator[Model]:
    """Record a change to ``obj`` with the row as it was before and after the block::

        with transaction.atomic(), audited(actor=actor, action="tariff.update", obj=tariff):
            tariff.currency = "EUR"
            tariff.save(update_fields=["currency"])

    The entry is written only if the block finishes; use it inside the change's transaction.
    """
    from accounts.services import audit_record

    before = audit_snapshot(type(obj)._default_manager.filter(pk=obj.pk).first()) if obj.pk else None
    yield obj
    fresh = type(obj)._default_manager.filter(pk=obj.pk).first()
    audit_record(
        actor=actor,
        action=action,
        obj=fresh or obj,
        before=before,
        after=audit_snapshot(fresh),
        source=source,
    )


class AuditedModelAdminMixin:
    """Records admin saves and deletions in the audit log, with the row before and after."""

    def _audit_before(self, obj: Model) -> dict | None:
        if obj.pk is None:
            return None
        fresh = type(obj)._default_manager.filter(pk=obj.pk).first()
        return audit_snapshot(fresh)

    def save_model(self, request, obj, form, change):

        before = self._audit_before(obj) if change else None
        super().save_model(request, obj, form, change)
        request._audit_pending = (obj, before, "update" if change else "create")

    def save_related(self, request, form, formsets, change):
        from accounts.services import audit_record

        super().save_related(request, form, formsets, change)
        # Recorded after the many-to-many fields are saved, so "after" includes them.
        pending = getattr(request, "_audit_pending", None)
        if pending is not None:
            obj, before, action = pending
            audit_record(
                actor=request.user,
                action=action,
                obj=obj,
                before=before,
                after=audit_snapshot(obj),
                source="admin",
            )
            request._audit_pending = None

    def delete_model(self, request, obj):
        from accounts.services import audit_record

        before = audit_snapshot(obj)
        audit_record(actor=request.user, action="delete", obj=obj, before=before, after=None, source="admin")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        from accounts.services import audit_record

        for obj in queryset:
            audit_record(
                actor=request.user,
                action="delete",
                obj=obj,
                before=audit_snapshot(obj),
                after=None,
                source="admin",
            )
        super().delete_queryset(request, queryset)


class AuditedAdminSite(admin.AdminSite):
    """The default admin site: mixes the audit hook into every registered ModelAdmin."""

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AuditedModelAdminMixin):
            admin_class = type(
                admin_class.__name__,
                (AuditedModelAdminMixin, admin_class),
                {
                    "__module__": admin_class.__module__,
                },
            )
        super().register(model_or_iterable, admin_class, **options)
