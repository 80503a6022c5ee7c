"""Tenant isolation, in one place: which rows an actor may see.

Every API view that reads rows goes through :func:`scope_queryset`, normally by inheriting
:class:`ScopedQuerysetMixin` (or :class:`ScopedGenericViewSet`). Rows outside the scope
simply do not exist for the caller, so another tenant's object answers 404, never 403.

Who sees what
-------------
- **operators** (staff users, members of an operator organization, API keys of an operator
  organization): every row;
- **organization owners and admins**: the rows of their organizations;
- **everyone else** (drivers, plain members): the rows they own themselves;
- **API keys**: the rows of the key's organization (and only within their scopes, which
  ``accounts.permissions.ApiKeyScopePermission`` checks per view).

How a model joins
-----------------
Each model an API exposes declares how it relates to a tenant, once, with :func:`register`::

    from accounts import scoping

    scoping.register(
        "billing.Invoice",
        user="account__user",                  # lookup path to the owning User (or None)
        organization="account__organization",  # lookup path to the owning Organization (or None)
    )

- ``user`` and ``organization`` are ORM lookup paths (or tuples of them) from the model to the
  owning ``accounts.User`` / ``accounts.Organization`` (``"pk"`` when the model *is* the
  organization). A row is visible when any path leads to the actor.
- Neither path: only operators see the rows (logs, back-office tables).
- ``public=True``: every authenticated caller may *read* all rows (the charger catalogue
  drivers search). Writes are still for the view's permissions to allow.

Put the call at the bottom of your app's ``models.py`` (or in ``AppConfig.ready``). The
registrations for ``chargers`` and ``billing`` models live at the end of this module, so those
apps need no code of their own; change them here when their models change.

A model that is not registered makes :func:`scope_queryset` raise ``ImproperlyConfigured``:
an unscoped view fails closed, loudly, instead of leaking.

In a view::

    class InvoiceViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
        queryset = Invoice.objects.select_related("account")
        api_area = "billing"   # the API key scope area, see accounts.permissions

Outside views (services, selectors) use ``scope_queryset(qs, actor)`` with
``actor = Actor.for_user(user)`` or ``actor_for_request(request)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import Model, Q, QuerySet
from rest_framework.relations import PrimaryKeyRelatedField

if TYPE_CHECKING:
    from accounts.models import ApiKey, User


@dataclass(frozen=True)
class TenantPaths:
    user: tuple[str, ...] = ()
    organization: tuple[str, ...] = ()
    public: bool = False


def _paths(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


_registry: dict[str, TenantPaths] = {}


def register(
    model: str | type[Model],
    *,
    user: str | tuple[str, ...] | None = None,
    organization: str | tuple[str, ...] | None = None,
    public: bool = False,
) -> None:
    """Declare how ``model`` (a class or ``"app_label.ModelName"``) belongs to a tenant.

    Registering the same model twice with the same paths is harmless; with different paths
    it is a programming error and raises.
    """
    label = model.lower() if isinstance(model, str) else model._meta.label_lower
    paths = TenantPaths(user=_paths(user), organization=_paths(organization), public=public)
    existing = _registry.get(label)
    if existing is not None and existing != paths:
        raise ImproperlyConfigured(f"{label} is already registered for scoping as {existing}.")
    _registry[label] = paths


def paths_for(model: type[Model]) -> TenantPaths:
    try:
        return _registry[model._meta.label_lower]
    except KeyError:
        raise ImproperlyConfigured(
            f"{model._meta.label} is not registered with accounts.scoping; "
            "call accounts.scoping.register(...) for it (see the module docstring)."
        ) from None


def is_registered(model: type[Model]) -> bool:
    return model._meta.label_lower in _registry


class Actor:
    """Who is calling: a person, or an API key acting for its organization."""

    def __init__(self, *, user: User | None = None, api_key: ApiKey | None = None):
        self.user = user if user is not None and user.is_authenticated else None
        self.api_key = api_key

    @classmethod
    def for_user(cls, user) -> Actor:
        return cls(user=user)

    @classmethod
    def for_api_key(cls, api_key: ApiKey) -> Actor:
        return cls(api_key=api_key)

    def __repr__(self) -> str:
        return f"<Actor {self}>"

    def __str__(self) -> str:
        if self.api_key is not None:
            return f"api-key:{self.api_key.prefix}"
        return str(self.user) if self.user is not None else "anonymous"

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None or self.api_key is not None

    @cached_property
    def _roles(self) -> dict[int, tuple[str, str]]:
        """organization id -> (role, organization kind); one query, then kept."""
        if self.api_key is not None:
            from accounts.models import Membership

            return {self.api_key.organization_id: (Membership.Role.ADMIN, self.api_key.organization.kind)}
        if self.user is None:
            return {}
        return {
            organization_id: (role, kind)
            for organization_id, role, kind in self.user.memberships.values_list(
                "organization_id", "role", "organization__kind"
            )
        }

    @cached_property
    def is_operator(self) -> bool:
        from accounts.models import Organization

        if self.user is not None and self.user.is_active and self.user.is_staff:
            return True
        return any(kind == Organization.Kind.OPERATOR for _role, kind in self._roles.values())

    @cached_property
    def admin_organization_ids(self) -> frozenset[int]:
        """Organizations whose rows the actor manages (owner or admin; an API key's own)."""
        from accounts.models import Membership

        managing = {Membership.Role.OWNER, Membership.Role.ADMIN}
        return frozenset(org_id for org_id, (role, _kind) in self._roles.items() if role in managing)

    @cached_property
    def organization_ids(self) -> frozenset[int]:
        """Every organization the actor belongs to, whatever the role."""
        return frozenset(self._roles)

    def role_in(self, organization_id: int) -> str | None:
        entry = self._roles.get(organization_id)
        return entry[0] if entry else None

    def manages(self, organization_id: int | None) -> bool:
        return self.is_operator or (
            organization_id is not None and organization_id in self.admin_organization_ids
        )


def actor_for_request(request) -> Actor:
    """The request's actor, made once per request (``request.auth`` is the ApiKey for key calls)."""
    django_request = getattr(request, "_request", request)
    actor = getattr(django_request, "evcharge_actor", None)
    if actor is None:
        from accounts.models import ApiKey

        auth = getattr(request, "auth", None)
        if isinstance(auth, ApiKey):
            actor = Actor.for_api_key(auth)
        else:
            actor = Actor.for_user(getattr(request, "user", None))
        django_request.evcharge_actor = actor
    return actor


def _crosses_many(model: type[Model], path: str) -> bool:
    """Whether a lookup path walks a one-to-many or many-to-many relation (rows may repeat)."""
    for name in path.split("__"):
        if name == "pk":
            return False
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return False
        if field.one_to_many or field.many_to_many:
            return True
        if not field.is_relation:
            return False
        model = field.related_model
    return False


def scope_queryset(queryset: QuerySet, actor: Actor) -> QuerySet:
    """``queryset`` narrowed to the rows ``actor`` may see (see the module docstring)."""
    model = queryset.model
    paths = paths_for(model)
    if not actor.is_authenticated:
        return queryset.none()
    if actor.is_operator or paths.public:
        return queryset
    condition = Q()
    if actor.user is not None:
        for path in paths.user:
            condition |= Q(**{path: actor.user.pk})
    if actor.admin_organization_ids:
        for path in paths.organization:
            condition |= Q(**{f"{path}__in": actor.admin_organization_ids})
    if not condition:
        return queryset.none()
    crosses = any(_crosses_many(model, p) for p in (*paths.user, *paths.organization))
    if crosses:
        # Joins through a to-many relation repeat rows: filter by a semi-join instead.
        return queryset.filter(pk__in=model._base_manager.filter(condition).values("pk"))
    return queryset.filter(condition)


class ScopedQuerysetMixin:
    """For DRF generic views and viewsets: ``get_queryset`` is narrowed to the caller's tenant.

    Put it first in the bases. ``get_object`` goes through ``get_queryset``, so an object
    outside the tenant answers 404.
    """

    def get_queryset(self):
        return scope_queryset(super().get_queryset(), actor_for_request(self.request))

    @property
    def actor(self) -> Actor:
        return actor_for_request(self.request)


class ScopedPrimaryKeyRelatedField(PrimaryKeyRelatedField):
    """A related-object field of an input serializer that only accepts objects the caller
    sees: another tenant's id is answered like an unknown one."""

    def get_queryset(self):
        return scope_queryset(super().get_queryset(), actor_for_request(self.context["request"]))


# --- Registrations ------------------------------------------------------------------------
# accounts
register("accounts.IdToken", user="user", organization="organization")
register("accounts.Membership", user="user", organization="organization")
register("accounts.Organization", user="memberships__user", organization="pk")
register("accounts.ApiKey", organization="organization")
register("accounts.User", user="pk", organization="memberships__organization")
register("accounts.ApiCallLog")  # operators only
register("accounts.AuditEntry")  # operators only

# chargers: the catalogue is public to every authenticated caller; sessions and their data
# belong to the ID token's driver and organization; commands to whoever sent them.
register("chargers.Site", public=True)
register("chargers.ChargePoint", public=True)
register("chargers.Connector", public=True)
register("chargers.StatusChange", public=True)
register("chargers.ChargingSession", user="id_token__user", organization="id_token__organization")
register(
    "chargers.MeterValue", user="session__id_token__user", organization="session__id_token__organization"
)
register("chargers.ChargerCommand", user="requested_by")
register("chargers.OcppMessage")  # operators only
register("chargers.AvailabilitySample")  # operators only

# billing: an account belongs to a driver or an organization; a CDR also to the driver whose
# token charged; tariffs are a catalogue; assignments and runs are back office.
register("billing.BillingAccount", user="user", organization="organization")
register(
    "billing.Cdr",
    user=("account__user", "session__id_token__user"),
    organization="account__organization",
)
register("billing.Invoice", user="account__user", organization="account__organization")
register("billing.InvoiceLine", user="invoice__account__user", organization="invoice__account__organization")
register("billing.Payment", user="invoice__account__user", organization="invoice__account__organization")
register("billing.Refund", user="invoice__account__user", organization="invoice__account__organization")
register(
    "billing.CreditNote",
    user=("cdr__account__user", "cdr__session__id_token__user"),
    organization="cdr__account__organization",
)
register("billing.Tariff", public=True)
register("billing.TariffElement", public=True)
register("billing.TariffAssignment")  # operators only
