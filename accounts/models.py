from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)

    def get_by_natural_key(self, username: str):
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """A person: driver, fleet member, partner developer or operator. Logs in by e-mail."""

    email = models.EmailField("e-mail address", max_length=254, unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Operators: may log in to the back office.")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).lower()

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


class Organization(models.Model):
    """A company on the platform: the operator itself, a fleet customer or a partner system."""

    class Kind(models.TextChoices):
        OPERATOR = "operator", "Operator"
        FLEET = "fleet", "Fleet"
        PARTNER = "partner", "Partner"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in an organization."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"
        DRIVER = "driver", "Driver"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="accounts_membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class IdToken(models.Model):
    """An RFID card or app token a driver authorizes charging with (OCPP idTag).

    ``status`` is what the operator set; the effective status also considers ``expires_at``
    (see ``accounts.services.id_token_authorization``).
    """

    class Type(models.TextChoices):
        RFID = "RFID", "RFID card"
        APP_USER = "APP_USER", "App user"
        AD_HOC_USER = "AD_HOC_USER", "Ad-hoc user"
        OTHER = "OTHER", "Other"

    class Status(models.TextChoices):
        ACCEPTED = "Accepted", "Accepted"
        BLOCKED = "Blocked", "Blocked"
        EXPIRED = "Expired", "Expired"
        INVALID = "Invalid", "Invalid"

    uid = models.CharField(
        "idTag", max_length=20, unique=True, help_text="OCPP idTag (at most 20 characters)."
    )
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.RFID)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACCEPTED)
    expires_at = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="id_tokens")
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="id_tokens"
    )
    parent_id_tag = models.CharField(max_length=20, blank=True)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["uid"]
        verbose_name = "ID token"
        constraints = [
            # OCPP idTags are case-insensitive (CiString20): one token per idTag, whatever the case.
            models.UniqueConstraint(Lower("uid"), name="accounts_idtoken_uid_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.uid

    def effective_status(self, at=None) -> str:
        at = at or timezone.now()
        if self.status == self.Status.ACCEPTED and self.expires_at and self.expires_at <= at:
            return self.Status.EXPIRED
        return self.status


def validate_rate(value: str) -> None:
    from accounts.throttling import parse_rate

    try:
        count, seconds = parse_rate(value)
    except (ValueError, KeyError, TypeError):
        raise ValidationError("A rate like 600/min, 10/s or 5000/hour.") from None
    if count < 1 or seconds < 1:
        raise ValidationError("A rate like 600/min, 10/s or 5000/hour.")


class ApiKeyScope(models.TextChoices):
    """What an API key may do, per area. ``<area>:write`` includes ``<area>:read``."""

    CHARGERS_READ = "chargers:read", "Chargers: read"
    CHARGERS_WRITE = "chargers:write", "Chargers: write"
    SESSIONS_READ = "sessions:read", "Sessions: read"
    SESSIONS_WRITE = "sessions:write", "Sessions: write"
    BILLING_READ = "billing:read", "Billing: read"
    BILLING_WRITE = "billing:write", "Billing: write"
    ACCOUNTS_READ = "accounts:read", "Accounts: read"
    ACCOUNTS_WRITE = "accounts:write", "Accounts: write"


class ApiKey(models.Model):
    """A partner system's credential, acting for its organization within its scopes.

    The key handed out is ``evk_<prefix>_<secret>``; only ``prefix`` (to find the row) and a
    keyed hash of the secret are stored. See ``accounts.api_keys`` for why a fast hash is right.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, help_text="List of scopes, e.g. chargers:read.")
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    rate_limit = models.CharField(
        max_length=32,
        blank=True,
        validators=[validate_rate],
        help_text="This key's own rate for the API, e.g. 5000/min; empty: the default for API keys. "
        "Set by operators.",
    )
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def is_usable(self, at=None) -> bool:
        at = at or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > at)


class ApiCallLog(models.Model):
    """One call to ``/api/``. Written in batches from a Redis buffer (``accounts.call_log``)."""

    entry_id = models.UUIDField(unique=True, editable=False, help_text="Makes a re-flushed batch harmless.")
    at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    method = models.CharField(max_length=8)
    route = models.CharField(max_length=255, blank=True, help_text="URL pattern, e.g. api/v1/id-tokens/<pk>/")
    path = models.CharField(max_length=1024)
    status = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField()
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "API call"
        indexes = [
            models.Index(fields=["user", "-at"]),
            models.Index(fields=["api_key", "-at"]),
            models.Index(fields=["route", "-at"]),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status}"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError(f"{self.model.__name__} is append-only.")

    def delete(self):
        raise TypeError(f"{self.model.__name__} is append-only.")


class AuditEntry(models.Model):
    """An operator action, kept for good: who did what to which object, before and after.

    Append-only: the model refuses updates and deletes, and so does a PostgreSQL trigger
    (migration 0003). Written by ``accounts.services.audit_record`` only.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_repr = models.CharField(max_length=255, blank=True)
    action = models.CharField(
        max_length=64, db_index=True, help_text="e.g. create, update, delete, command.sent"
    )
    content_type = models.ForeignKey(
        "contenttypes.ContentType", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=16, blank=True, help_text="admin, api, task, ocpp")
    request_id = models.CharField(max_length=128, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["content_type", "object_id", "-at"])]

    def __str__(self) -> str:
        return f"{self.actor_repr} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("AuditEntry is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("AuditEntry is append-only.")
