"""Writes of the accounts app: ID tokens, API keys, memberships, the audit log.

Every service takes the acting ``Actor`` (see ``accounts.scoping``) and checks what the
actor may do; views find the object through the scoped queryset first, so an object of
another tenant never reaches a service from the API.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.utils import timezone

from accounts import api_keys
from accounts.exceptions import Forbidden, IdTokenExists, InvalidInput, InvalidTransition, LastOwner
from accounts.models import ApiKey, ApiKeyScope, AuditEntry, IdToken, Membership, Organization, User
from accounts.scoping import Actor
from evcharge.core.request_id import current_request_id

# --- ID tokens ---------------------------------------------------------------------------

# The one place that says which status may follow which (operators may do all of these in
# the admin; the API offers block and unblock).
ID_TOKEN_TRANSITIONS: dict[str, set[str]] = {
    IdToken.Status.ACCEPTED: {IdToken.Status.BLOCKED, IdToken.Status.EXPIRED, IdToken.Status.INVALID},
    IdToken.Status.BLOCKED: {IdToken.Status.ACCEPTED, IdToken.Status.INVALID},
    IdToken.Status.EXPIRED: {IdToken.Status.ACCEPTED, IdToken.Status.INVALID},
    IdToken.Status.INVALID: set(),
}


def id_token_authorization(*, id_tag: str) -> str:
    """The OCPP 1.6 AuthorizationStatus for ``id_tag``: Accepted, Blocked, Expired or Invalid.

    idTags compare case-insensitively (OCPP CiString20). Unknown → Invalid; a token whose
    expiry has passed → Expired; a token of a deactivated user → Blocked. ConcurrentTx (a
    token already in a running session) is the caller's to decide, with the session at hand.
    """
    token = IdToken.objects.select_related("user").filter(uid__iexact=id_tag).first()
    if token is None:
        return IdToken.Status.INVALID.value
    status = token.effective_status()
    if status == IdToken.Status.ACCEPTED and token.user is not None and not token.user.is_active:
        return IdToken.Status.BLOCKED.value
    return str(status)


@transaction.atomic
def id_token_issue(
    *,
    actor: Actor,
    uid: str,
    organization: Organization | None,
    user: User | None = None,
    type: str = IdToken.Type.RFID,
    expires_at: datetime | None = None,
    label: str = "",
) -> IdToken:
    """Issue a token. Operators issue any; an organization's owners/admins (and its API keys)
    issue tokens of their organization, for its members only."""
    if not actor.is_operator and (
        organization is None or organization.pk not in actor.admin_organization_ids
    ):
        raise Forbidden("Only operators and the organization's admins issue its ID tokens.")
    if (
        user is not None
        and organization is not None
        and not actor.is_operator
        and not Membership.objects.filter(organization=organization, user=user).exists()
    ):
        raise InvalidInput(details={"user": ["The user is not a member of the organization."]})
    if not uid or len(uid) > 20:
        raise InvalidInput(details={"uid": ["1 to 20 characters (OCPP idTag)."]})
    if expires_at is not None and timezone.is_naive(expires_at):
        raise InvalidInput(details={"expires_at": ["A time zone is required."]})
    if IdToken.objects.filter(uid__iexact=uid).exists():
        raise IdTokenExists()
    try:
        with transaction.atomic():
            token = IdToken.objects.create(
                uid=uid, organization=organization, user=user, type=type, expires_at=expires_at, label=label
            )
    except IntegrityError as exc:  # a concurrent issue of the same idTag
        raise IdTokenExists() from exc
    audit_record(actor=actor, action="id_token.issue", obj=token, before=None, after=_token_state(token))
    return token


def _token_state(token: IdToken) -> dict:
    return {
        "uid": token.uid,
        "status": token.status,
        "user": token.user_id,
        "organization": token.organization_id,
    }


def _id_token_set_status(*, actor: Actor, id_token: IdToken, status: str, action: str) -> IdToken:
    token = IdToken.objects.select_for_update().get(pk=id_token.pk)
    if token.status == status:
        return token  # repeating a block or unblock changes nothing
    if status not in ID_TOKEN_TRANSITIONS[token.status]:
        raise InvalidTransition(f"A token that is {token.status} cannot become {status}.")
    before = _token_state(token)
    token.status = status
    token.save(update_fields=["status", "updated_at"])
    audit_record(actor=actor, action=action, obj=token, before=before, after=_token_state(token))
    return token


@transaction.atomic
def id_token_block(*, actor: Actor, id_token: IdToken) -> IdToken:
    """Block a token: its driver, its organization's admins, or an operator. Locks the token row."""
    own = actor.user is not None and id_token.user_id == actor.user.pk
    if not (own or actor.manages(id_token.organization_id)):
        raise Forbidden("Only the token's driver, its organization's admins and operators block it.")
    return _id_token_set_status(
        actor=actor, id_token=id_token, status=IdToken.Status.BLOCKED, action="id_token.block"
    )


@transaction.atomic
def id_token_unblock(*, actor: Actor, id_token: IdToken) -> IdToken:
    """Unblock a token: its organization's admins or an operator (not the driver, so a block
    an operator set for fraud stays). Locks the token row."""
    if not actor.manages(id_token.organization_id):
        raise Forbidden("Only the organization's admins and operators unblock a token.")
    return _id_token_set_status(
        actor=actor, id_token=id_token, status=IdToken.Status.ACCEPTED, action="id_token.unblock"
    )


# --- API keys ----------------------------------------------------------------------------


@transaction.atomic
def api_key_create(
    *,
    actor: Actor,
    organization: Organization,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the full secret key, which is never available again."""
    if actor.api_key is not None or not actor.manages(organization.pk):
        raise Forbidden("Only the organization's admins and operators create its API keys.")
    unknown = sorted(set(scopes) - set(ApiKeyScope.values))
    if unknown or not scopes:
        raise InvalidInput(details={"scopes": [f"Choose from {', '.join(ApiKeyScope.values)}."]})
    if not name.strip():
        raise InvalidInput(details={"name": ["A name is required."]})
    key, prefix, secret_hash = api_keys.new_key()
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name.strip(),
        prefix=prefix,
        secret_hash=secret_hash,
        scopes=sorted(set(scopes)),
        created_by=actor.user,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action="api_key.create",
        obj=api_key,
        before=None,
        after={"name": api_key.name, "scopes": api_key.scopes, "organization": organization.pk},
    )
    return api_key, key


@transaction.atomic
def api_key_revoke(*, actor: Actor, api_key: ApiKey) -> ApiKey:
    """Revoke a key for good; the next call with it answers 401. Revoking twice changes nothing."""
    if not actor.manages(api_key.organization_id) or (actor.api_key is not None):
        raise Forbidden("Only the organization's admins and operators revoke its API keys.")
    locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="api_key.revoke",
            obj=locked,
            before=None,
            after={"revoked_at": locked.revoked_at.isoformat()},
        )
    return locked


# --- Memberships -------------------------------------------------------------------------


def _check_manages_membership(actor: Actor, organization: Organization, roles: set[str]) -> None:
    if actor.api_key is not None:
        raise Forbidden("Memberships are managed by people, not API keys.")
    if not actor.manages(organization.pk):
        raise Forbidden("Only the organization's owners and admins manage its members.")
    if Membership.Role.OWNER in roles and not (
        actor.is_operator or actor.role_in(organization.pk) == Membership.Role.OWNER
    ):
        raise Forbidden("Only owners grant, change or remove the owner role.")


def _lock_organization(organization: Organization) -> None:
    # Membership changes of one organization are serialized on its row, so two admins
    # cannot remove the last two owners at the same time.
    Organization.objects.select_for_update().filter(pk=organization.pk).first()


@transaction.atomic
def membership_add(*, actor: Actor, organization: Organization, email: str, role: str) -> Membership:
    """Add a person to an organization by e-mail. An unknown address gets an account with no
    usable password (they set one through password reset); so the answer never tells whether
    the address was known."""
    if role not in Membership.Role.values:
        raise InvalidInput(details={"role": [f"Choose from {', '.join(Membership.Role.values)}."]})
    _check_manages_membership(actor, organization, {role})
    _lock_organization(organization)
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=None)
    membership, created = Membership.objects.get_or_create(
        user=user, organization=organization, defaults={"role": role}
    )
    if not created:
        raise InvalidInput(details={"email": ["Already a member."]})
    audit_record(
        actor=actor,
        action="membership.add",
        obj=membership,
        before=None,
        after={"user": user.pk, "organization": organization.pk, "role": role},
    )
    return membership


def _owners_left_without(membership: Membership) -> int:
    return (
        Membership.objects.filter(organization_id=membership.organization_id, role=Membership.Role.OWNER)
        .exclude(pk=membership.pk)
        .count()
    )


@transaction.atomic
def membership_change_role(*, actor: Actor, membership: Membership, role: str) -> Membership:
    """Change a member's role; the organization keeps at least one owner."""
    if role not in Membership.Role.values:
        raise InvalidInput(details={"role": [f"Choose from {', '.join(Membership.Role.values)}."]})
    _check_manages_membership(actor, membership.organization, {role, membership.role})
    _lock_organization(membership.organization)
    membership = Membership.objects.get(pk=membership.pk)
    demotes_owner = membership.role == Membership.Role.OWNER and role != Membership.Role.OWNER
    if demotes_owner and _owners_left_without(membership) == 0:
        raise LastOwner()
    before = {"role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor, action="membership.change_role", obj=membership, before=before, after={"role": role}
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: Actor, membership: Membership) -> None:
    """Remove a member; the organization keeps at least one owner."""
    _check_manages_membership(actor, membership.organization, {membership.role})
    _lock_organization(membership.organization)
    if membership.role == Membership.Role.OWNER and _owners_left_without(membership) == 0:
        raise LastOwner()
    audit_record(
        actor=actor,
        action="membership.remove",
        obj=membership,
        before={"user": membership.user_id, "role": membership.role},
        after=None,
    )
    membership.delete()


# --- Audit log ---------------------------------------------------------------------------


def audit_record(
    *,
    actor: Actor | User | None,
    action: str,
    obj: Model | None,
    before: dict | None = None,
    after: dict | None = None,
    source: str = "",
) -> AuditEntry:
    """Append one entry to the audit log. Call it inside the transaction that makes the change,
    so the entry and the change commit (or roll back) together.

    ``actor``: the ``Actor``, a ``User`` or None (the system). ``action``: a short verb or
    ``<entity>.<verb>`` (``command.send``, ``tariff.update``, ``invoice.void``). ``before`` and
    ``after``: JSON-safe dicts (``accounts.audit.audit_snapshot(obj)`` makes one of a row).
    """
    user = None
    actor_repr = "system"
    if isinstance(actor, Actor):
        user = actor.user
        actor_repr = str(actor)
    elif actor is not None and getattr(actor, "is_authenticated", False) and isinstance(actor, User):
        user = actor
        actor_repr = str(actor)
    elif actor is not None:
        actor_repr = str(actor)
    content_type = (
        ContentType.objects.get_for_model(obj, for_concrete_model=False) if obj is not None else None
    )
    return AuditEntry.objects.create(
        actor=user,
        actor_repr=actor_repr[:255],
        action=action,
        content_type=content_type,
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        object_repr=str(obj)[:255] if obj is not None else "",
        before=before,
        after=after,
        source=source,
        request_id=current_request_id() or "",
    )
