"""Celery tasks of the charging network: thin wrappers around ``chargers.polling`` and commands."""

from celery import shared_task

from chargers import polling
from chargers.commands import command_send
from chargers.models import ChargePoint


@shared_task(name="chargers.tasks.poll_charger_status")
def poll_charger_status() -> dict:
    """Every minute (beat): offline detection, stale status triggers, silent sessions,
    availability samples and the command sweep. Safe to run twice: each step is set-based
    and idempotent for the same state."""
    return polling.poll()


@shared_task(name="chargers.tasks.purge_ocpp_messages")
def purge_ocpp_messages() -> int:
    return polling.ocpp_messages_purge()


@shared_task(name="chargers.tasks.send_command")
def send_command(charge_point_id: int, action: str, payload: dict | None = None) -> int | None:
    """Send a command from a worker (e.g. a scheduled reset); returns the command id."""
    charge_point = ChargePoint.objects.filter(pk=charge_point_id).first()
    if charge_point is None:
        return None
    return command_send(charge_point=charge_point, action=action, payload=payload or {}, source="system").pk
