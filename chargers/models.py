"""The charging network: sites, chargers, connectors, sessions, meter values, commands, logs."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from chargers.choices import (
    CommandAction,
    CommandSource,
    CommandStatus,
    ConnectorStandard,
    ConnectorStatus,
    Direction,
    PowerType,
    RegistrationStatus,
    SessionStatus,
)
from evcharge.core.models import TimeStampedModel
from evcharge.core.validators import validate_time_zone

identity_validator = RegexValidator(
    r"^[A-Za-z0-9._:*+|@-]{1,48}$", "1-48 characters: letters, digits and . _ : * + | @ -"
)


class Site(TimeStampedModel):
    """A location with chargers (OCPI Location)."""

    name = models.CharField(max_length=200)
    operator = models.ForeignKey(
        "accounts.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="sites"
    )
    address = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=100, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    latitude = models.DecimalField(
        max_digits=9, decimal_places=6, validators=[MinValueValidator(-90), MaxValueValidator(90)]
    )
    longitude = models.DecimalField(
        max_digits=9, decimal_places=6, validators=[MinValueValidator(-180), MaxValueValidator(180)]
    )
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text="IANA name, e.g. Europe/Berlin",
    )
    opening_hours = models.JSONField(
        default=dict, blank=True, help_text='OCPI hours: {"twentyfourseven": true} or regular hours'
    )

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["latitude", "longitude"])]

    def __str__(self) -> str:
        return self.name


class ChargePoint(TimeStampedModel):
    """A charger, known by its OCPP identity (the last path segment of its WebSocket URL)."""

    site = models.ForeignKey(
        Site,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="charge_points",
        help_text="Empty while a charger waits in pending registration.",
    )
    identity = models.CharField(max_length=48, unique=True, validators=[identity_validator])
    password_hash = models.CharField(
        max_length=255, blank=True, help_text="Hash of the charger's HTTP Basic password (profile 1/2)."
    )
    vendor = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=20, blank=True)
    serial_number = models.CharField(max_length=25, blank=True)
    firmware_version = models.CharField(max_length=50, blank=True)
    iccid = models.CharField(max_length=20, blank=True)
    imsi = models.CharField(max_length=20, blank=True)
    meter_type = models.CharField(max_length=25, blank=True)
    meter_serial_number = models.CharField(max_length=25, blank=True)
    protocol = models.CharField(max_length=16, default="ocpp1.6")
    registration_status = models.CharField(
        max_length=16, choices=RegistrationStatus.choices, default=RegistrationStatus.ACCEPTED
    )
    heartbeat_interval = models.PositiveIntegerField(default=300, help_text="seconds")
    is_online = models.BooleanField(default=False, db_index=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_boot_at = models.DateTimeField(null=True, blank=True)
    last_status_at = models.DateTimeField(null=True, blank=True)
    # Connector 0: the charger as a whole.
    status = models.CharField(
        max_length=16, choices=ConnectorStatus.choices, default=ConnectorStatus.UNAVAILABLE
    )
    error_code = models.CharField(max_length=32, blank=True, default="NoError")
    diagnostics_status = models.CharField(max_length=32, blank=True)
    firmware_status = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["identity"]
        verbose_name = "charger"

    def __str__(self) -> str:
        return self.identity


class Connector(models.Model):
    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="connectors")
    connector_id = models.PositiveSmallIntegerField(help_text="OCPP connectorId, 1 and up")
    standard = models.CharField(
        max_length=24, choices=ConnectorStandard.choices, default=ConnectorStandard.CCS2
    )
    power_type = models.CharField(max_length=12, choices=PowerType.choices, default=PowerType.DC)
    max_power_kw = models.DecimalField(max_digits=7, decimal_places=2, default=50)
    status = models.CharField(
        max_length=16, choices=ConnectorStatus.choices, default=ConnectorStatus.UNAVAILABLE
    )
    error_code = models.CharField(max_length=32, blank=True, default="NoError")
    info = models.CharField(max_length=50, blank=True)
    vendor_error_code = models.CharField(max_length=50, blank=True)
    status_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["charge_point", "connector_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["charge_point", "connector_id"], name="connector_unique_per_charger"
            ),
            models.CheckConstraint(condition=Q(connector_id__gte=1), name="connector_id_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.charge_point.identity}#{self.connector_id}"


class StatusChange(models.Model):
    """History of StatusNotifications (connector 0 is the charger itself) and of offline/online."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="status_changes")
    connector_id = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=ConnectorStatus.choices)
    error_code = models.CharField(max_length=32, blank=True)
    info = models.CharField(max_length=50, blank=True)
    vendor_error_code = models.CharField(max_length=50, blank=True)
    timestamp = models.DateTimeField(help_text="when the charger says it happened (UTC)")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [models.Index(fields=["charge_point", "-timestamp"])]

    def __str__(self) -> str:
        return (
            f"{self.charge_point_id}#{self.connector_id} {self.status} at {self.timestamp:%Y-%m-%d %H:%M:%S}"
        )


class ChargingSession(TimeStampedModel):
    """An OCPP transaction. Its primary key is the transactionId the charger receives.

    The database guarantees: one ACTIVE session per connector, one ACTIVE session per idTag,
    and a repeated StartTransaction (same charger, connector, idTag, timestamp, meterStart)
    maps to the same row. Energy is integer Wh and never decreases.
    """

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.PROTECT, related_name="sessions")
    connector = models.ForeignKey(Connector, on_delete=models.PROTECT, related_name="sessions")
    id_tag = models.CharField(max_length=20)
    id_token = models.ForeignKey(
        "accounts.IdToken", null=True, blank=True, on_delete=models.PROTECT, related_name="sessions"
    )
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.ACTIVE)
    start_status = models.CharField(
        max_length=16, default="Accepted", help_text="idTagInfo answered at start"
    )
    started_at = models.DateTimeField()
    meter_start_wh = models.BigIntegerField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    meter_stop_wh = models.BigIntegerField(null=True, blank=True)
    stop_reason = models.CharField(max_length=32, blank=True)
    stop_id_tag = models.CharField(max_length=20, blank=True)
    energy_wh = models.BigIntegerField(default=0)
    last_meter_at = models.DateTimeField(null=True, blank=True)
    reservation_id = models.IntegerField(null=True, blank=True)
    remote_command = models.ForeignKey(
        "chargers.ChargerCommand", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    needs_review = models.BooleanField(default=False, db_index=True)
    review_reasons = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector"], condition=Q(status="active"), name="one_active_session_per_connector"
            ),
            models.UniqueConstraint(
                fields=["id_tag"], condition=Q(status="active"), name="one_active_session_per_id_tag"
            ),
            models.UniqueConstraint(
                fields=["charge_point", "connector", "id_tag", "started_at", "meter_start_wh"],
                name="start_transaction_idempotency",
            ),
            models.CheckConstraint(condition=Q(energy_wh__gte=0), name="session_energy_not_negative"),
        ]
        indexes = [
            models.Index(fields=["status", "last_meter_at"]),
            # The CDR sweep's window: finished sessions by stop time.
            models.Index(
                fields=["stopped_at"], condition=Q(stopped_at__isnull=False), name="chargers_session_stopped"
            ),
        ]

    def __str__(self) -> str:
        return f"session {self.pk} on {self.connector}"


class MeterValue(models.Model):
    """One sampled value. Energy registers are stored normalized to Wh in ``value``."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="meter_values")
    connector_id = models.PositiveSmallIntegerField()
    session = models.ForeignKey(
        ChargingSession, null=True, blank=True, on_delete=models.CASCADE, related_name="meter_values"
    )
    timestamp = models.DateTimeField()
    measurand = models.CharField(max_length=48, default="Energy.Active.Import.Register")
    phase = models.CharField(max_length=8, blank=True, default="")
    location = models.CharField(max_length=8, blank=True, default="")
    context = models.CharField(max_length=24, blank=True, default="Sample.Periodic")
    unit = models.CharField(max_length=12, blank=True, help_text="unit after normalization")
    value = models.DecimalField(max_digits=20, decimal_places=4)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["timestamp", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["charge_point", "connector_id", "timestamp", "measurand", "phase", "location"],
                name="meter_value_once",
            ),
        ]
        indexes = [models.Index(fields=["session", "measurand", "timestamp"])]

    def __str__(self) -> str:
        return f"{self.measurand} {self.value} {self.unit} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class ChargerCommand(TimeStampedModel):
    """A call from the system to a charger and its outcome; see ``CommandStatus`` for the states."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="commands")
    action = models.CharField(max_length=32, choices=CommandAction.choices)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=CommandStatus.choices, default=CommandStatus.QUEUED)
    response = models.JSONField(null=True, blank=True)
    error = models.CharField(max_length=255, blank=True)
    unique_id = models.CharField(max_length=36, blank=True)
    source = models.CharField(max_length=8, choices=CommandSource.choices, default=CommandSource.API)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "command"

    def __str__(self) -> str:
        return f"{self.action} to {self.charge_point_id} ({self.status})"


class OcppMessage(models.Model):
    """Every OCPP frame in and out, raw, for support and audits; pruned after a retention period."""

    charge_point = models.ForeignKey(
        ChargePoint, null=True, blank=True, on_delete=models.CASCADE, related_name="messages"
    )
    identity = models.CharField(max_length=48, db_index=True)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    message_type = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="2 CALL, 3 RESULT, 4 ERROR"
    )
    unique_id = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=48, blank=True)
    raw = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["identity", "-created_at"])]
        verbose_name = "OCPP message"

    def __str__(self) -> str:
        return f"{self.identity} {self.direction} {self.action or self.message_type}"


class AvailabilitySample(models.Model):
    """Per-charger availability by day: how many polls found it online."""

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="availability")
    day = models.DateField()
    samples = models.PositiveIntegerField(default=0)
    online_samples = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["charge_point", "day"], name="availability_once_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.charge_point_id} {self.day}: {self.online_samples}/{self.samples}"


class TransactionAnomaly(models.Model):
    """Something a charger sent about a transaction that the system could not apply as is.

    Always answered on the wire, recorded here, and flagged for an operator to review:
    a StopTransaction for an unknown id (or -1), meter values for an unknown transaction.
    """

    class Kind(models.TextChoices):
        UNKNOWN_TRANSACTION_STOP = "unknown_stop", "StopTransaction for an unknown transaction"
        UNKNOWN_TRANSACTION_METER = "unknown_meter", "MeterValues for an unknown transaction"

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="anomalies")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    transaction_id = models.IntegerField(null=True, blank=True)
    payload = models.JSONField(default=dict)
    resolved = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "transaction anomalies"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.charge_point_id}, tx {self.transaction_id})"


class Authorization(models.Model):
    """An Authorize a charger sent, our answer, and the session it led to (if any).

    An accepted authorization with no session after ``OCPP_AUTHORIZED_NOT_STARTED_SECONDS`` is
    marked ``never_started`` by status polling (a driver tapped a card and left, or the car
    refused to charge): support sees it in the admin.
    """

    charge_point = models.ForeignKey(ChargePoint, on_delete=models.CASCADE, related_name="authorizations")
    id_tag = models.CharField(max_length=20)
    status = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    session = models.ForeignKey(
        ChargingSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="authorizations"
    )
    never_started = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["charge_point", "id_tag", "created_at"])]

    def __str__(self) -> str:
        return f"{self.id_tag} at {self.charge_point_id}: {self.status}"
