"""Commands to chargers: a record per call, routed through the channel layer to whichever
ocpp process holds the charger's socket.

States (``CommandStatus``, transitions in ``chargers.choices.COMMAND_TRANSITIONS``)::

    queued ──► sent ──► accepted | rejected | failed | timed_out
       └─────► failed            (charger offline, or the channel layer refused the message)

The API, the admin and Celery call ``command_send``; the consumer calls ``command_mark_sent``
and ``command_complete``. At most one call is in flight per charger (the ``ocpp`` library's
call lock), and a late answer never lands on the next command (answers are matched by
message id, and the call times out with the library's own timeout).
"""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, _validate_payload

from accounts.audit import audit_snapshot
from accounts.services import audit_record
from chargers.choices import COMMAND_FINAL, COMMAND_TRANSITIONS, CommandAction, CommandSource, CommandStatus
from chargers.models import ChargePoint, ChargerCommand
from chargers.ocpp import registry
from evcharge.core.errors import DomainError

# What a charger's answer means, per action: the value of its "status" field that counts as done.
_ACCEPTED_ANSWERS = {"Accepted", "Unlocked", "Scheduled", "RebootRequired"}


class InvalidCommand(DomainError):
    code = "invalid_command"


def command_validate(*, action: str, payload: dict) -> None:
    """Check a command against the OCPP 1.6 JSON schema before it is queued."""
    if action not in CommandAction.values:
        raise InvalidCommand(f"unknown action {action!r}", details={"action": CommandAction.values})
    if not isinstance(payload, dict):
        raise InvalidCommand("payload must be a JSON object")
    try:
        _validate_payload(Call(unique_id="validate", action=action, payload=payload), "1.6")
    except OCPPError as error:
        cause = error.details.get("cause") if isinstance(error.details, dict) else None
        raise InvalidCommand(
            f"payload does not match the OCPP 1.6 schema of {action}",
            details={"payload": [str(cause or error.description)]},
        ) from None


def _transition(command: ChargerCommand, new: str) -> None:
    if new not in COMMAND_TRANSITIONS[command.status]:
        raise DomainError(
            f"command {command.pk} cannot go from {command.status} to {new}", code="bad_transition"
        )
    command.status = new


def command_send(
    *,
    charge_point: ChargePoint,
    action: str,
    payload: dict | None = None,
    source: str = CommandSource.API,
    requested_by=None,
) -> ChargerCommand:
    """Record a command and route it to the charger's socket; fails at once if it is offline.

    A person's command is written to the audit log with it. Routing happens after commit (at
    once outside a transaction), so the consumer always finds the row.
    """
    payload = payload or {}
    command_validate(action=action, payload=payload)
    with transaction.atomic():
        command = ChargerCommand.objects.create(
            charge_point=charge_point,
            action=action,
            payload=payload,
            source=source,
            requested_by=requested_by,
        )
        if requested_by is not None:
            audit_record(
                actor=requested_by,
                action="command.send",
                obj=command,
                after=audit_snapshot(command),
                source=source,
            )
        channel = registry.holder(charge_point.identity)
        if channel is None:
            return command_fail(command=command, reason="charger is offline (not connected)")
        transaction.on_commit(lambda: _route(command, channel))
    command.refresh_from_db()
    return command


def _route(command: ChargerCommand, channel: str) -> None:
    try:
        async_to_sync(get_channel_layer().send)(channel, {"type": "ocpp.command", "command_id": command.pk})
    except Exception as error:  # channel full or layer down: the command cannot reach the charger
        command_fail(command=command, reason=f"could not route the command: {type(error).__name__}")


def command_fail(*, command: ChargerCommand, reason: str) -> ChargerCommand:
    with transaction.atomic():
        command = ChargerCommand.objects.select_for_update().get(pk=command.pk)
        if command.status in COMMAND_FINAL:
            return command
        _transition(command, CommandStatus.FAILED)
        command.error = reason[:255]
        command.completed_at = timezone.now()
        command.save(update_fields=["status", "error", "completed_at", "updated_at"])
    return command


def command_mark_sent(*, command_id: int, unique_id: str) -> ChargerCommand | None:
    """The consumer is about to send it; None if it is gone or already final (nothing to send)."""
    with transaction.atomic():
        command = ChargerCommand.objects.select_for_update().filter(pk=command_id).first()
        if command is None or command.status != CommandStatus.QUEUED:
            return None
        _transition(command, CommandStatus.SENT)
        command.unique_id = unique_id
        command.sent_at = timezone.now()
        command.save(update_fields=["status", "unique_id", "sent_at", "updated_at"])
    return command


def command_complete(
    *, command_id: int, response: dict | None = None, error: str = "", timed_out: bool = False
) -> ChargerCommand:
    """Record the charger's answer (or a CALLERROR, or no answer in time)."""
    with transaction.atomic():
        command = ChargerCommand.objects.select_for_update().get(pk=command_id)
        if command.status in COMMAND_FINAL:
            return command
        if timed_out:
            new = CommandStatus.TIMED_OUT
        elif error:
            new = CommandStatus.FAILED
        else:
            answer = (response or {}).get("status")
            new = (
                CommandStatus.ACCEPTED
                if answer is None or answer in _ACCEPTED_ANSWERS
                else CommandStatus.REJECTED
            )
        _transition(command, new)
        command.response = response
        command.error = error[:255]
        command.completed_at = timezone.now()
        command.save(update_fields=["status", "response", "error", "completed_at", "updated_at"])
    return command


def command_wait(*, command: ChargerCommand, seconds: float) -> ChargerCommand:
    """Wait up to ``seconds`` for a command to reach a final state (polling its row)."""
    deadline = time.monotonic() + max(0.0, min(seconds, settings.OCPP_COMMAND_MAX_WAIT_SECONDS))
    while command.status not in COMMAND_FINAL and time.monotonic() < deadline:
        time.sleep(0.1)
        command.refresh_from_db()
    return command


def commands_expire(*, now=None) -> int:
    """Sweep commands whose ocpp process never answered (it died, or the message was lost)."""
    now = now or timezone.now()
    grace = timezone.timedelta(seconds=settings.OCPP_CALL_TIMEOUT_SECONDS * 2 + 30)
    timed_out = ChargerCommand.objects.filter(status=CommandStatus.SENT, sent_at__lt=now - grace).update(
        status=CommandStatus.TIMED_OUT, completed_at=now, error="no answer recorded", updated_at=now
    )
    lost = ChargerCommand.objects.filter(status=CommandStatus.QUEUED, created_at__lt=now - grace).update(
        status=CommandStatus.FAILED,
        completed_at=now,
        error="never picked up by an ocpp process",
        updated_at=now,
    )
    return timed_out + lost


def command_response_dict(result: Any) -> dict:
    """An ``ocpp`` call_result dataclass back to OCPP's camelCase JSON."""
    from dataclasses import asdict

    from ocpp.charge_point import remove_nones, snake_to_camel_case

    return snake_to_camel_case(remove_nones(asdict(result)))
