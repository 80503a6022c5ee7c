"""Status vocabularies of the charging network, and the transitions allowed between them."""

from django.db import models


class RegistrationStatus(models.TextChoices):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class ConnectorStatus(models.TextChoices):
    """OCPP 1.6 ChargePointStatus."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ConnectorStandard(models.TextChoices):
    """OCPI 2.2.1 ConnectorType, the plugs drivers filter by."""

    CCS2 = "IEC_62196_T2_COMBO", "CCS2"
    CCS1 = "IEC_62196_T1_COMBO", "CCS1"
    TYPE2 = "IEC_62196_T2", "Type 2"
    TYPE1 = "IEC_62196_T1", "Type 1"
    CHADEMO = "CHADEMO", "CHAdeMO"
    GBT_DC = "GBT_DC", "GB/T DC"
    DOMESTIC_F = "DOMESTIC_F", "Schuko"


class PowerType(models.TextChoices):
    AC_1_PHASE = "AC_1_PHASE", "AC single phase"
    AC_3_PHASE = "AC_3_PHASE", "AC three phase"
    DC = "DC", "DC"


class SessionStatus(models.TextChoices):
    """A charging session (an OCPP transaction).

    ACTIVE → COMPLETED when the charger stops it. REFUSED is a start the system answered with
    a non-Accepted idTagInfo (the charger still got a transactionId and will stop it).
    Allowed moves are in ``SESSION_TRANSITIONS``; nothing leaves COMPLETED.
    """

    ACTIVE = "active"
    COMPLETED = "completed"
    REFUSED = "refused"


SESSION_TRANSITIONS: dict[str, set[str]] = {
    SessionStatus.ACTIVE: {SessionStatus.COMPLETED},
    SessionStatus.REFUSED: {SessionStatus.COMPLETED},
    SessionStatus.COMPLETED: set(),
}


class CommandStatus(models.TextChoices):
    """A command to a charger: QUEUED → SENT → ACCEPTED / REJECTED / FAILED / TIMED_OUT.

    QUEUED may also go straight to FAILED (charger offline, or the call could not be built).
    """

    QUEUED = "queued"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


COMMAND_TRANSITIONS: dict[str, set[str]] = {
    CommandStatus.QUEUED: {CommandStatus.SENT, CommandStatus.FAILED},
    CommandStatus.SENT: {
        CommandStatus.ACCEPTED,
        CommandStatus.REJECTED,
        CommandStatus.FAILED,
        CommandStatus.TIMED_OUT,
    },
    CommandStatus.ACCEPTED: set(),
    CommandStatus.REJECTED: set(),
    CommandStatus.FAILED: set(),
    CommandStatus.TIMED_OUT: set(),
}
COMMAND_FINAL = {s for s, nxt in COMMAND_TRANSITIONS.items() if not nxt}


class CommandAction(models.TextChoices):
    REMOTE_START = "RemoteStartTransaction"
    REMOTE_STOP = "RemoteStopTransaction"
    RESET = "Reset"
    UNLOCK_CONNECTOR = "UnlockConnector"
    CHANGE_AVAILABILITY = "ChangeAvailability"
    GET_CONFIGURATION = "GetConfiguration"
    CHANGE_CONFIGURATION = "ChangeConfiguration"
    TRIGGER_MESSAGE = "TriggerMessage"
    CLEAR_CACHE = "ClearCache"
    DATA_TRANSFER = "DataTransfer"


class CommandSource(models.TextChoices):
    API = "api"
    ADMIN = "admin"
    SYSTEM = "system"


class Direction(models.TextChoices):
    IN = "in", "charger → system"
    OUT = "out", "system → charger"
