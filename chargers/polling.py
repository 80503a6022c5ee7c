"""Status polling: what the network looks like when nobody is told.

Run every minute by Celery beat (``chargers.tasks.poll_charger_status``). Each step is
set-based (a few queries whatever the number of chargers) and harmless to repeat:

1. chargers silent for more than twice their heartbeat interval go offline, and their
   connectors show Unavailable (history rows say why);
2. online chargers whose status is older than ``OCPP_STATUS_STALE_SECONDS`` are asked for it
   (TriggerMessage StatusNotification), at most once per stale period;
3. sessions with no meter values for ``OCPP_SESSION_SILENT_HOURS`` are flagged, and accepted
   remote starts and Authorize requests that never became a session within
   ``OCPP_AUTHORIZED_NOT_STARTED_SECONDS`` are marked;
4. each charger's availability sample for today counts one more poll (and one more online);
5. commands nobody answered are closed (their ocpp process died).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from chargers.choices import CommandAction, CommandSource, CommandStatus, SessionStatus
from chargers.commands import command_send, commands_expire
from chargers.models import (
    Authorization,
    AvailabilitySample,
    ChargePoint,
    ChargerCommand,
    ChargingSession,
    OcppMessage,
)
from chargers.services import chargers_offline, session_flag


def poll(*, now=None) -> dict:
    now = now or timezone.now()
    return {
        "offline": chargers_mark_offline(now=now),
        "status_requested": chargers_request_stale_status(now=now),
        "silent_sessions": sessions_flag_silent(now=now),
        "remote_starts_unused": remote_starts_mark_unused(now=now),
        "authorizations_unused": authorizations_mark_unused(now=now),
        "availability": availability_sample(now=now),
        "commands_expired": commands_expire(now=now),
    }


def chargers_mark_offline(*, now) -> int:
    online = ChargePoint.objects.filter(is_online=True).values_list(
        "pk", "last_seen_at", "heartbeat_interval"
    )
    silent = [
        pk for pk, seen, interval in online if seen is None or seen < now - timedelta(seconds=2 * interval)
    ]
    if silent:
        chargers_offline(charge_point_ids=silent, now=now)
    return len(silent)


def chargers_request_stale_status(*, now) -> int:
    if settings.EMBEDDED:
        # No Redis: the channel layer lives inside the web process and a worker cannot reach
        # the sockets; asking would only record failed commands.
        return 0
    stale_before = now - timedelta(seconds=settings.OCPP_STATUS_STALE_SECONDS)
    stale = ChargePoint.objects.filter(is_online=True).filter(
        Q(last_status_at__isnull=True) | Q(last_status_at__lt=stale_before)
    )
    # Ask at most once per stale period: skip chargers with a recent trigger of ours.
    asked = ChargerCommand.objects.filter(
        action=CommandAction.TRIGGER_MESSAGE, source=CommandSource.SYSTEM, created_at__gte=stale_before
    ).values("charge_point_id")
    count = 0
    for charge_point in stale.exclude(pk__in=asked)[:500]:
        command_send(
            charge_point=charge_point,
            action=CommandAction.TRIGGER_MESSAGE,
            payload={"requestedMessage": "StatusNotification"},
            source=CommandSource.SYSTEM,
        )
        count += 1
    return count


def sessions_flag_silent(*, now) -> int:
    hours = settings.OCPP_SESSION_SILENT_HOURS
    reason = f"no meter values for {hours} hours"
    silent = ChargingSession.objects.filter(
        status=SessionStatus.ACTIVE, last_meter_at__lt=now - timedelta(hours=hours)
    )
    flagged = 0
    for session in silent.only("pk", "review_reasons").iterator():
        if reason not in session.review_reasons:
            session_flag(session=session, reason=reason)
            flagged += 1
    return flagged


def remote_starts_mark_unused(*, now) -> int:
    """Accepted RemoteStartTransactions that no StartTransaction followed within the window."""
    cutoff = now - timedelta(seconds=settings.OCPP_AUTHORIZED_NOT_STARTED_SECONDS)
    used = ChargingSession.objects.filter(remote_command__isnull=False).values("remote_command_id")
    return (
        ChargerCommand.objects.filter(
            action=CommandAction.REMOTE_START,
            status=CommandStatus.ACCEPTED,
            completed_at__lt=cutoff,
            error="",
        )
        .exclude(pk__in=used)
        .update(error="accepted, but no session started within the window")
    )


def authorizations_mark_unused(*, now) -> int:
    """Accepted Authorize requests that no session followed within the window."""
    cutoff = now - timedelta(seconds=settings.OCPP_AUTHORIZED_NOT_STARTED_SECONDS)
    return Authorization.objects.filter(
        status="Accepted", session__isnull=True, never_started=False, created_at__lt=cutoff
    ).update(never_started=True)


@transaction.atomic
def availability_sample(*, now) -> int:
    day = now.date()
    ids = list(ChargePoint.objects.values_list("pk", flat=True))
    AvailabilitySample.objects.bulk_create(
        [AvailabilitySample(charge_point_id=pk, day=day) for pk in ids], ignore_conflicts=True
    )
    today = AvailabilitySample.objects.filter(day=day)
    today.update(samples=F("samples") + 1)
    today.filter(charge_point__is_online=True).update(online_samples=F("online_samples") + 1)
    return len(ids)


def ocpp_messages_purge(*, now=None) -> int:
    """Delete OCPP frame-log rows and Authorize records past their retention. Returns rows deleted.

    ``OCPP_MESSAGE_LOG_RETENTION_DAYS`` for the frame log, ``OCPP_AUTHORIZATION_RETENTION_DAYS``
    for Authorize records (one per Authorize a charger sends; the sessions they led to stay).
    """
    now = now or timezone.now()
    return _purge_before(
        OcppMessage, now - timedelta(days=settings.OCPP_MESSAGE_LOG_RETENTION_DAYS)
    ) + _purge_before(Authorization, now - timedelta(days=settings.OCPP_AUTHORIZATION_RETENTION_DAYS))


def _purge_before(model, cutoff) -> int:
    deleted = 0
    while True:  # bounded batches: no long lock on a big table
        batch = list(model.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[:10_000])
        if not batch:
            return deleted
        deleted += model.objects.filter(pk__in=batch).delete()[0]
