"""Writes of the charging network. OCPP handlers, the API, the admin and tasks all come here.

Every function is atomic and validates before it writes. The protocol rules real chargers make
necessary live here, each named where it is applied:

- a repeated StartTransaction (same charger, connector, idTag, timestamp, meterStart) gets the
  same transactionId: the database's ``start_transaction_idempotency`` constraint decides;
- a second start on a busy connector, or with an idTag already charging, is refused with
  ConcurrentTx (the charger still gets a transactionId, and will stop it);
- StopTransaction is always answered; an unknown id (or -1) is recorded as an anomaly, a repeat
  changes nothing;
- messages queued offline arrive late and in any order: each keeps its own timestamp, and an
  older status never overwrites a newer one;
- meter values are stored once (``meter_value_once``), and a session's energy never goes down:
  a register that goes backwards (meter reset, clock skew) flags the session for review.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg.types.json import Jsonb

from accounts.models import IdToken
from accounts.services import id_token_authorization
from chargers import live
from chargers.choices import ConnectorStatus, RegistrationStatus, SessionStatus
from chargers.models import (
    Authorization,
    ChargePoint,
    ChargerCommand,
    ChargingSession,
    Connector,
    MeterValue,
    Site,
    StatusChange,
    TransactionAnomaly,
)
from evcharge.core.errors import DomainError

logger = logging.getLogger(__name__)

ENERGY_REGISTER = "Energy.Active.Import.Register"
# Readings before this are a charger whose clock was never set (1970 and friends).
EARLIEST_PLAUSIBLE = datetime(2015, 1, 1, tzinfo=UTC)


class InvalidOcppValue(DomainError):
    """A value in a charger's message that the schema allows but the domain cannot use."""

    code = "invalid_value"


# --- charger identity and passwords ---------------------------------------------------


def charger_password_hash(password: str) -> str:
    """Hash a charger's OCPP password.

    Passwords are issued by us (``charger_password_new``: 24 random bytes), so a salted SHA-256
    is enough against guessing, and keeps the WebSocket handshake cheap for thousands of
    chargers reconnecting at once (a slow hash like Argon2 would cost ~50 ms each).
    """
    salt = secrets.token_hex(8)
    digest = hashlib.sha256(f"{salt}${password}".encode()).hexdigest()
    return f"sha256${salt}${digest}"


def charger_password_check(password: str, encoded: str) -> bool:
    try:
        algorithm, salt, digest = encoded.split("$", 2)
    except ValueError:
        return False
    if algorithm != "sha256":
        return False
    candidate = hashlib.sha256(f"{salt}${password}".encode()).hexdigest()
    return hmac.compare_digest(candidate, digest)


def charger_password_new() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class ConnectionVerdict:
    charge_point_id: int | None
    reason: str = ""
    heartbeat_interval: int = 300

    @property
    def accepted(self) -> bool:
        return self.charge_point_id is not None


def charger_authenticate(*, identity: str, password: str | None) -> ConnectionVerdict:
    """Decide a WebSocket handshake (security profile 1: HTTP Basic, user = identity).

    Known charger with a password: the password must match. Unknown identity: refused, unless
    pending registration is on, in which case a Pending charger is created for an operator to
    approve (its BootNotification answers Pending until then).
    """
    charge_point = (
        ChargePoint.objects.filter(identity=identity)
        .only("pk", "password_hash", "heartbeat_interval")
        .first()
    )
    if charge_point is None:
        if not settings.OCPP_PENDING_REGISTRATION:
            return ConnectionVerdict(None, "unknown identity")
        charge_point, _ = ChargePoint.objects.get_or_create(
            identity=identity, defaults={"registration_status": RegistrationStatus.PENDING}
        )
        return ConnectionVerdict(charge_point.pk, heartbeat_interval=charge_point.heartbeat_interval)
    if not charge_point.password_hash:
        if settings.OCPP_PENDING_REGISTRATION:
            return ConnectionVerdict(charge_point.pk, heartbeat_interval=charge_point.heartbeat_interval)
        return ConnectionVerdict(None, "charger has no password set")
    if password is None or not charger_password_check(password, charge_point.password_hash):
        return ConnectionVerdict(None, "wrong password")
    return ConnectionVerdict(charge_point.pk, heartbeat_interval=charge_point.heartbeat_interval)


@transaction.atomic
def charger_register(
    *,
    site: Site,
    identity: str,
    connectors: list[dict],
    vendor: str = "",
    model: str = "",
    heartbeat_interval: int = 300,
) -> tuple[ChargePoint, str]:
    """Register a charger with its connectors; returns it and its OCPP password (shown once)."""
    if ChargePoint.objects.filter(identity=identity).exists():
        raise DomainError("A charger with this identity exists.", code="identity_taken", status_code=409)
    password = charger_password_new()
    charge_point = ChargePoint(
        site=site,
        identity=identity,
        vendor=vendor,
        model=model,
        heartbeat_interval=heartbeat_interval,
        password_hash=charger_password_hash(password),
    )
    charge_point.full_clean()
    charge_point.save()
    Connector.objects.bulk_create(Connector(charge_point=charge_point, **spec) for spec in connectors)
    return charge_point, password


@transaction.atomic
def charger_set_password(*, charge_point: ChargePoint) -> str:
    password = charger_password_new()
    charge_point.password_hash = charger_password_hash(password)
    charge_point.save(update_fields=["password_hash", "updated_at"])
    return password


# --- connection, boot, heartbeat ------------------------------------------------------


def charger_connected(*, charge_point_id: int) -> None:
    now = timezone.now()
    ChargePoint.objects.filter(pk=charge_point_id).update(is_online=True, last_seen_at=now, updated_at=now)
    live.charger_online(charge_point_id, True, now)


def charger_disconnected(*, charge_point_id: int) -> None:
    """The socket closed (not taken over by a newer connection): the charger is offline now."""
    chargers_offline(charge_point_ids=[charge_point_id], now=timezone.now())


@transaction.atomic
def chargers_offline(*, charge_point_ids: list[int], now: datetime) -> None:
    """Mark chargers offline; their connectors show Unavailable, with a history row each.

    ``status_at`` is cleared so that the first status the charger sends when it is back
    applies even if its clock runs behind ours.
    """
    ChargePoint.objects.filter(pk__in=charge_point_ids).update(is_online=False, updated_at=now)
    connectors = Connector.objects.filter(charge_point_id__in=charge_point_ids)
    pairs = list(connectors.values_list("charge_point_id", "connector_id"))
    StatusChange.objects.bulk_create(
        StatusChange(
            charge_point_id=cp,
            connector_id=c,
            status=ConnectorStatus.UNAVAILABLE,
            info="offline",
            error_code="NoError",
            timestamp=now,
        )
        for cp, c in pairs
    )
    connectors.update(status=ConnectorStatus.UNAVAILABLE, status_at=None, info="offline")
    by_charger: dict[int, list[int]] = {pk: [] for pk in charge_point_ids}
    for cp, c in pairs:
        by_charger[cp].append(c)
    # The API reads the database until they speak.
    transaction.on_commit(lambda: live.forget(by_charger))


def charger_seen(*, charge_point_id: int, at: datetime) -> None:
    ChargePoint.objects.filter(pk=charge_point_id).update(last_seen_at=at, is_online=True)


@transaction.atomic
def charger_boot(
    *,
    charge_point_id: int,
    charge_point_vendor: str,
    charge_point_model: str,
    charge_point_serial_number: str = "",
    charge_box_serial_number: str = "",
    firmware_version: str = "",
    iccid: str = "",
    imsi: str = "",
    meter_type: str = "",
    meter_serial_number: str = "",
) -> tuple[str, int]:
    """Record a BootNotification; returns (registration status, heartbeat interval)."""
    charge_point = ChargePoint.objects.select_for_update().get(pk=charge_point_id)
    now = timezone.now()
    charge_point.vendor = charge_point_vendor
    charge_point.model = charge_point_model
    charge_point.serial_number = charge_point_serial_number or charge_box_serial_number
    charge_point.firmware_version = firmware_version
    charge_point.iccid = iccid
    charge_point.imsi = imsi
    charge_point.meter_type = meter_type
    charge_point.meter_serial_number = meter_serial_number
    charge_point.last_boot_at = now
    charge_point.last_seen_at = now
    charge_point.is_online = True
    charge_point.save(
        update_fields=[
            "vendor",
            "model",
            "serial_number",
            "firmware_version",
            "iccid",
            "imsi",
            "meter_type",
            "meter_serial_number",
            "last_boot_at",
            "last_seen_at",
            "is_online",
            "updated_at",
        ]
    )
    return charge_point.registration_status, charge_point.heartbeat_interval


@transaction.atomic
def charger_approve(*, charge_point: ChargePoint, site: Site | None = None) -> str:
    """Accept a Pending charger; returns a new OCPP password to configure on it."""
    charge_point.registration_status = RegistrationStatus.ACCEPTED
    if site is not None:
        charge_point.site = site
    password = charger_password_new()
    charge_point.password_hash = charger_password_hash(password)
    charge_point.save(update_fields=["registration_status", "site", "password_hash", "updated_at"])
    return password


@transaction.atomic
def charger_firmware_status(*, charge_point_id: int, status: str) -> None:
    ChargePoint.objects.filter(pk=charge_point_id).update(firmware_status=status, updated_at=timezone.now())


@transaction.atomic
def charger_diagnostics_status(*, charge_point_id: int, status: str) -> None:
    ChargePoint.objects.filter(pk=charge_point_id).update(
        diagnostics_status=status, updated_at=timezone.now()
    )


# --- status ---------------------------------------------------------------------------


def parse_ocpp_time(value: str | None) -> datetime | None:
    """OCPP timestamps are UTC ISO 8601; a naive one is read as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidOcppValue(f"not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@transaction.atomic
def connector_status_record(
    *,
    charge_point_id: int,
    connector_id: int,
    status: str,
    error_code: str,
    timestamp: str | None = None,
    info: str = "",
    vendor_id: str = "",
    vendor_error_code: str = "",
) -> None:
    """Record a StatusNotification. History always; the current status only if it is newer
    than what we have (offline queues replay old statuses after newer ones)."""
    now = timezone.now()
    at = parse_ocpp_time(timestamp) or now
    if at < EARLIEST_PLAUSIBLE:
        at = now  # the charger's clock is not set yet: when we heard it is the best we know
    StatusChange.objects.create(
        charge_point_id=charge_point_id,
        connector_id=connector_id,
        status=status,
        error_code=error_code,
        info=info,
        vendor_error_code=vendor_error_code,
        timestamp=at,
    )
    if connector_id == 0:
        updated = ChargePoint.objects.filter(
            Q(last_status_at__isnull=True) | Q(last_status_at__lte=at), pk=charge_point_id
        ).update(status=status, error_code=error_code, last_status_at=at)
        ChargePoint.objects.filter(pk=charge_point_id).update(last_seen_at=now)
    else:
        connector, created = Connector.objects.get_or_create(
            charge_point_id=charge_point_id,
            connector_id=connector_id,
            defaults={
                "status": status,
                "error_code": error_code,
                "info": info,
                "status_at": at,
                "vendor_error_code": vendor_error_code,
            },
        )
        updated = (
            1
            if created
            else Connector.objects.filter(
                Q(status_at__isnull=True) | Q(status_at__lte=at), pk=connector.pk
            ).update(
                status=status,
                error_code=error_code,
                info=info,
                vendor_error_code=vendor_error_code,
                status_at=at,
            )
        )
        ChargePoint.objects.filter(pk=charge_point_id).update(last_status_at=now, last_seen_at=now)
    if updated:
        transaction.on_commit(
            lambda: live.connector_status(charge_point_id, connector_id, status, error_code, at)
        )


# --- authorization --------------------------------------------------------------------


def id_tag_status(*, id_tag: str) -> tuple[str, IdToken | None]:
    """OCPP AuthorizationStatus for an idTag (``accounts.services.id_token_authorization``),
    or ConcurrentTx when the token is already in a running session."""
    status = id_token_authorization(id_tag=id_tag)
    token = IdToken.objects.filter(uid__iexact=id_tag).first()
    if (
        status == IdToken.Status.ACCEPTED
        and ChargingSession.objects.filter(id_tag__iexact=id_tag, status=SessionStatus.ACTIVE).exists()
    ):
        return "ConcurrentTx", token
    return status, token


@transaction.atomic
def authorize(*, charge_point_id: int, id_tag: str) -> dict:
    """Answer an Authorize (its idTagInfo) and record it, to link it to the session it starts."""
    info = id_tag_info(id_tag=id_tag)
    Authorization.objects.create(charge_point_id=charge_point_id, id_tag=id_tag, status=info["status"])
    return info


def id_tag_info(*, id_tag: str) -> dict:
    status, token = id_tag_status(id_tag=id_tag)
    info: dict = {"status": status}
    if token is not None:
        if token.expires_at:
            info["expiry_date"] = token.expires_at.isoformat()
        if token.parent_id_tag:
            info["parent_id_tag"] = token.parent_id_tag
    return info


# --- transactions ---------------------------------------------------------------------


def _flag(session: ChargingSession, reason: str) -> None:
    if reason not in session.review_reasons:
        session.review_reasons = [*session.review_reasons, reason]
    session.needs_review = True


@dataclass(frozen=True)
class StartResult:
    transaction_id: int
    status: str


def session_start(
    *,
    charge_point_id: int,
    connector_id: int,
    id_tag: str,
    meter_start: int,
    timestamp: str,
    reservation_id: int | None = None,
) -> StartResult:
    """Handle StartTransaction; always returns a transactionId (OCPP requires one).

    Idempotent on (charger, connector, idTag, timestamp, meterStart): a charger that lost our
    answer and resends gets the same transactionId and status.
    """
    if connector_id < 1:
        raise InvalidOcppValue("connectorId must be 1 or more for a transaction")
    started_at = parse_ocpp_time(timestamp)
    key = {
        "charge_point_id": charge_point_id,
        "connector__connector_id": connector_id,
        "id_tag": id_tag,
        "started_at": started_at,
        "meter_start_wh": meter_start,
    }
    existing = ChargingSession.objects.filter(**key).first()
    if existing is not None:
        return StartResult(existing.pk, existing.start_status)
    try:
        with transaction.atomic():
            return _session_create(
                charge_point_id=charge_point_id,
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start=meter_start,
                started_at=started_at,
                reservation_id=reservation_id,
            )
    except IntegrityError:
        # A concurrent duplicate won the race; its row is the answer.
        existing = ChargingSession.objects.filter(**key).first()
        if existing is None:
            raise
        return StartResult(existing.pk, existing.start_status)


def _session_create(
    *,
    charge_point_id: int,
    connector_id: int,
    id_tag: str,
    meter_start: int,
    started_at: datetime,
    reservation_id: int | None,
) -> StartResult:
    connector, _ = Connector.objects.get_or_create(charge_point_id=charge_point_id, connector_id=connector_id)
    connector = Connector.objects.select_for_update().get(pk=connector.pk)
    status, token = id_tag_status(id_tag=id_tag)
    busy = ChargingSession.objects.filter(connector=connector, status=SessionStatus.ACTIVE).first()
    if busy is not None:
        status = "ConcurrentTx"
        _flag(busy, f"charger started another transaction on this connector at {started_at.isoformat()}")
        busy.save(update_fields=["needs_review", "review_reasons", "updated_at"])
    session = ChargingSession(
        charge_point_id=charge_point_id,
        connector=connector,
        id_tag=id_tag,
        id_token=token,
        status=SessionStatus.ACTIVE if status == "Accepted" else SessionStatus.REFUSED,
        start_status=status,
        started_at=started_at,
        meter_start_wh=meter_start,
        reservation_id=reservation_id,
        last_meter_at=started_at,
    )
    now = timezone.now()
    if started_at < EARLIEST_PLAUSIBLE:
        _flag(session, "charger clock not set at start (timestamp before 2015)")
    elif started_at > now + timedelta(minutes=5):
        _flag(session, "start timestamp is in the future: charger clock ahead")
    if meter_start < 0:
        _flag(session, "negative meterStart")
    session.remote_command = _remote_start_for(charge_point_id, connector_id, id_tag, now)
    session.save()
    if session.status == SessionStatus.ACTIVE:
        window = now - timedelta(seconds=settings.OCPP_AUTHORIZED_NOT_STARTED_SECONDS)
        latest = (
            Authorization.objects.filter(
                charge_point_id=charge_point_id,
                id_tag__iexact=id_tag,
                status="Accepted",
                session__isnull=True,
                created_at__gte=window,
            )
            .order_by("-created_at")
            .first()
        )
        if latest is not None:
            Authorization.objects.filter(pk=latest.pk).update(session=session, never_started=False)
    return StartResult(session.pk, status)


def _remote_start_for(
    charge_point_id: int, connector_id: int, id_tag: str, now: datetime
) -> ChargerCommand | None:
    """OCPP 1.6 does not link a RemoteStartTransaction to the StartTransaction it causes:
    correlate by charger, idTag and connector (if the command named one) within a window."""
    window = now - timedelta(seconds=settings.OCPP_REMOTE_START_WINDOW_SECONDS)
    candidates = ChargerCommand.objects.filter(
        charge_point_id=charge_point_id,
        action="RemoteStartTransaction",
        status="accepted",
        created_at__gte=window,
        payload__idTag=id_tag,
    ).order_by("-created_at")
    for command in candidates:
        wanted = command.payload.get("connectorId")
        if (
            wanted in (None, connector_id)
            and not ChargingSession.objects.filter(remote_command=command).exists()
        ):
            return command
    return None


@dataclass(frozen=True)
class StopResult:
    id_tag_status: str | None
    recorded: bool


def session_stop(
    *,
    charge_point_id: int,
    transaction_id: int,
    meter_stop: int,
    timestamp: str,
    reason: str = "",
    id_tag: str | None = None,
    transaction_data: list[dict] | None = None,
) -> StopResult:
    """Handle StopTransaction. Always answerable: unknown ids become anomalies, repeats no-ops.

    On completion the session is priced by billing (a task enqueued after commit).
    """
    stopped_at = parse_ocpp_time(timestamp)
    tag_status = id_tag_status(id_tag=id_tag)[0] if id_tag else None
    if tag_status == "ConcurrentTx":
        tag_status = "Accepted"  # the running session is this one
    with transaction.atomic():
        session = _session_for_update(
            charge_point_id=charge_point_id,
            transaction_id=transaction_id,
            unknown=TransactionAnomaly.Kind.UNKNOWN_TRANSACTION_STOP,
            payload={"meterStop": meter_stop, "timestamp": timestamp, "reason": reason, "idTag": id_tag},
        )
        if session is None:
            return StopResult(tag_status, recorded=False)
        if session.status == SessionStatus.COMPLETED:
            return StopResult(tag_status, recorded=False)  # a resend: nothing changes
        if transaction_data:
            _meter_values_store(
                charge_point_id=charge_point_id,
                connector_id=session.connector.connector_id,
                session=session,
                readings=_meter_readings(transaction_data),
            )
            session.refresh_from_db()
        session.stopped_at = stopped_at
        session.meter_stop_wh = meter_stop
        session.stop_reason = reason
        session.stop_id_tag = id_tag or ""
        if meter_stop < 0:
            _flag(session, f"meterStop is {meter_stop}: energy taken from meter values")
        elif meter_stop < session.meter_start_wh:
            _flag(session, "meterStop below meterStart: meter reset or replaced")
        else:
            _raise_energy(session, meter_stop)
        if stopped_at < session.started_at:
            _flag(session, "stop timestamp before start: charger clock moved")
        session.status = SessionStatus.COMPLETED
        session.save()
        session_id = session.pk
        transaction.on_commit(lambda: _enqueue_pricing(session_id))
    return StopResult(tag_status, recorded=True)


def _session_for_update(
    *, charge_point_id: int, transaction_id: int, unknown: str, payload: dict
) -> ChargingSession | None:
    """The charger's session ``transaction_id``, locked; None (and an anomaly recorded) if the
    charger names a transaction we never issued to it (-1 included)."""
    session = (
        ChargingSession.objects.select_for_update()
        .filter(pk=transaction_id, charge_point_id=charge_point_id)
        .first()
    )
    if session is None:
        TransactionAnomaly.objects.create(
            charge_point_id=charge_point_id, kind=unknown, transaction_id=transaction_id, payload=payload
        )
    return session


def _enqueue_pricing(session_id: int) -> None:
    from evcharge.celery import app

    try:
        app.send_task("billing.tasks.cdr_price_session", kwargs={"session_id": session_id})
    except Exception:  # the broker is down: the billing sweep prices unpriced sessions later
        logger.exception("could not enqueue pricing of session %s", session_id)


def _raise_energy(session: ChargingSession, register_wh: int) -> None:
    """Energy only goes up: a register below what we already counted is flagged, not applied."""
    energy = register_wh - session.meter_start_wh
    if energy < 0:
        _flag(session, "energy register below meterStart: meter reset or replaced")
        return
    if energy < session.energy_wh:
        _flag(session, "energy register went backwards")
        return
    session.energy_wh = energy


# --- meter values ---------------------------------------------------------------------

_TO_BASE_UNIT = {
    "kWh": ("Wh", Decimal(1000)),
    "kW": ("W", Decimal(1000)),
    "kvarh": ("varh", Decimal(1000)),
    "kvar": ("var", Decimal(1000)),
    "kVA": ("VA", Decimal(1000)),
}
_DEFAULT_UNITS = {ENERGY_REGISTER: "Wh", "Energy.Active.Export.Register": "Wh", "Power.Active.Import": "W"}


def _normalize(raw: str, unit: str | None, measurand: str) -> tuple[Decimal, str]:
    try:
        value = Decimal(raw)
    except (InvalidOperation, TypeError):
        raise InvalidOcppValue(f"sampled value is not a number: {raw!r}") from None
    if not value.is_finite():
        raise InvalidOcppValue(f"sampled value is not finite: {raw!r}")
    unit = unit or _DEFAULT_UNITS.get(measurand, "")
    if unit in _TO_BASE_UNIT:
        base, factor = _TO_BASE_UNIT[unit]
        return value * factor, base
    return value, unit


def meter_values_record(
    *,
    charge_point_id: int,
    connector_id: int,
    meter_value: list[dict],
    transaction_id: int | None = None,
) -> None:
    """Handle MeterValues: store each sampled value once, advance the session's energy.

    The most frequent write of the network, so on PostgreSQL it is plain SQL: lock the session,
    then (readings in time order, the usual case) one statement that inserts the readings and
    updates the session. Values are read (and refused) before anything is written. Other
    databases (the SQLite quick start) take the same steps through the ORM.
    """
    readings = _meter_readings(meter_value)
    with transaction.atomic():
        session = None
        if transaction_id is not None:
            session = (
                _SessionMeter.locked(charge_point_id=charge_point_id, transaction_id=transaction_id)
                if connection.vendor == "postgresql"
                else ChargingSession.objects.select_for_update()
                .filter(pk=transaction_id, charge_point_id=charge_point_id)
                .first()
            )
            if session is None:  # a transaction we never issued to this charger
                TransactionAnomaly.objects.create(
                    charge_point_id=charge_point_id,
                    kind=TransactionAnomaly.Kind.UNKNOWN_TRANSACTION_METER,
                    transaction_id=transaction_id,
                    payload={"connectorId": connector_id, "meterValue": meter_value},
                )
        elif connector_id > 0:
            session = (
                ChargingSession.objects.select_for_update()
                .filter(
                    charge_point_id=charge_point_id,
                    connector__connector_id=connector_id,
                    status=SessionStatus.ACTIVE,
                )
                .first()
            )
        _meter_values_store(
            charge_point_id=charge_point_id, connector_id=connector_id, session=session, readings=readings
        )


# Plain SQL of the meter-value hot path (table names are ours, values are parameters).
_SESSION_TABLE, _METER_TABLE = ChargingSession._meta.db_table, MeterValue._meta.db_table
_SESSION_METER_SQL = (
    "SELECT id, status, started_at, meter_start_wh, energy_wh, last_meter_at, needs_review, "  # noqa: S608
    f"review_reasons FROM {_SESSION_TABLE} WHERE id = %s AND charge_point_id = %s FOR UPDATE"
)
_SESSION_METER_UPDATE_SQL = (
    f"UPDATE {_SESSION_TABLE} SET energy_wh = %s, last_meter_at = %s, needs_review = %s, "  # noqa: S608
    "review_reasons = %s, updated_at = %s WHERE id = %s"
)
_METER_INSERT_SQL = (
    f"INSERT INTO {_METER_TABLE} (charge_point_id, connector_id, session_id, timestamp, "  # noqa: S608
    "measurand, phase, location, context, unit, value, received_at) VALUES {values} "
    "ON CONFLICT DO NOTHING"
)


@dataclass
class _SessionMeter:
    """What the meter-value rules read and write of a session (duck-types ``ChargingSession``
    for ``_flag`` and ``_raise_energy``), without a model instance."""

    pk: int
    status: str
    started_at: datetime
    meter_start_wh: int
    energy_wh: int
    last_meter_at: datetime | None
    needs_review: bool
    review_reasons: list

    @classmethod
    def locked(cls, *, charge_point_id: int, transaction_id: int) -> _SessionMeter | None:
        with connection.cursor() as cursor:
            cursor.execute(_SESSION_METER_SQL, [transaction_id, charge_point_id])
            row = cursor.fetchone()
        if row is None:
            return None
        review_reasons = row[7] if isinstance(row[7], list) else json.loads(row[7])
        return cls(*row[:7], review_reasons)


# (timestamp, measurand, phase, location, context, unit, value)
Reading = tuple[datetime, str, str, str, str, str, Decimal]


def _meter_readings(meter_value: list[dict]) -> list[Reading]:
    """The sampled values of a MeterValues (or StopTransaction transactionData), normalized;
    InvalidOcppValue for a value or timestamp the domain cannot use."""
    readings: list[Reading] = []
    for entry in meter_value:
        at = parse_ocpp_time(entry["timestamp"])
        for sample in entry["sampled_value"]:
            measurand = sample.get("measurand") or ENERGY_REGISTER
            value, unit = _normalize(sample["value"], sample.get("unit"), measurand)
            readings.append(
                (
                    at,
                    measurand,
                    sample.get("phase") or "",
                    sample.get("location") or "",
                    sample.get("context") or "Sample.Periodic",
                    unit,
                    value,
                )
            )
    return readings


def _meter_insert_sql(
    charge_point_id: int, connector_id: int, session_id: int | None, readings: list[Reading], now: datetime
) -> tuple[str, list]:
    """INSERT of the readings (PostgreSQL); a duplicate (``meter_value_once``) is stored once."""
    params: list = []
    for reading in readings:
        params += [charge_point_id, connector_id, session_id, *reading, now]
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(readings))
    return _METER_INSERT_SQL.format(values=values), params


def _meter_insert(
    charge_point_id: int, connector_id: int, session_id: int | None, readings: list[Reading], now: datetime
) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(*_meter_insert_sql(charge_point_id, connector_id, session_id, readings, now))
        return
    fields = ("timestamp", "measurand", "phase", "location", "context", "unit", "value")
    MeterValue.objects.bulk_create(
        [
            MeterValue(
                charge_point_id=charge_point_id,
                connector_id=connector_id,
                session_id=session_id,
                received_at=now,
                **dict(zip(fields, reading, strict=True)),
            )
            for reading in readings
        ],
        ignore_conflicts=True,  # duplicates are stored once
    )


_MERGED_INSERT_MAX = 500  # readings in the statement that also updates the session


def _meter_values_store(
    *,
    charge_point_id: int,
    connector_id: int,
    session: ChargingSession | _SessionMeter | None,
    readings: list[Reading],
) -> None:
    if not readings:
        return
    now = timezone.now()
    session_id = session.pk if session is not None else None
    registers = [
        (at, value)
        for at, measurand, phase, _location, _context, unit, value in readings
        if measurand == ENERGY_REGISTER and not phase and unit == "Wh"
    ]
    if session is None or session.status == SessionStatus.COMPLETED or not registers:
        _meter_insert(charge_point_id, connector_id, session_id, readings, now)
        return
    # The highest register counted so far, and when the newest reading was taken: enough to
    # judge a reading that comes in time order without a query. Offline queues arrive in any
    # order; a reading older than the newest is compared against the stored ones (this
    # message's included, so those are inserted first).
    registers.sort(key=lambda register: register[0])
    newest_at = session.last_meter_at or session.started_at
    merged = (
        registers[0][0] >= newest_at  # no reading needs the stored ones to be judged
        and len(readings) <= _MERGED_INSERT_MAX
        and connection.vendor == "postgresql"
    )
    if not merged:
        _meter_insert(charge_point_id, connector_id, session_id, readings, now)
    highest = session.meter_start_wh + session.energy_wh
    backwards = False
    for at, value in registers:
        if at >= newest_at:
            backwards |= value < highest
            highest, newest_at = max(highest, int(value)), at
        else:
            backwards |= MeterValue.objects.filter(
                Q(timestamp__lt=at, value__gt=value) | Q(timestamp__gt=at, value__lt=value),
                session_id=session.pk,
                measurand=ENERGY_REGISTER,
                phase="",
                unit="Wh",
            ).exists()
            highest = max(highest, int(value))
    if backwards:
        _flag(session, "energy register went backwards (meter reset or clock skew)")
    _raise_energy(session, highest)
    session.last_meter_at = newest_at
    if connection.vendor != "postgresql":
        ChargingSession.objects.filter(pk=session.pk).update(
            energy_wh=session.energy_wh,
            last_meter_at=session.last_meter_at,
            needs_review=session.needs_review,
            review_reasons=session.review_reasons,
            updated_at=now,
        )
        return
    update_params = [
        session.energy_wh,
        session.last_meter_at,
        session.needs_review,
        Jsonb(session.review_reasons),
        now,
        session.pk,
    ]
    with connection.cursor() as cursor:
        if merged:  # one statement: the readings and the session's new energy
            insert, insert_params = _meter_insert_sql(
                charge_point_id, connector_id, session_id, readings, now
            )
            cursor.execute(
                f"WITH inserted AS ({insert}) {_SESSION_METER_UPDATE_SQL}", insert_params + update_params
            )
        else:
            cursor.execute(_SESSION_METER_UPDATE_SQL, update_params)


def session_flag(*, session: ChargingSession, reason: str) -> None:
    with transaction.atomic():
        session = ChargingSession.objects.select_for_update().get(pk=session.pk)
        _flag(session, reason)
        session.save(update_fields=["needs_review", "review_reasons", "updated_at"])
