"""Status polling: offline detection, stale status, silent sessions, availability."""

from datetime import timedelta

import pytest
from django.utils import timezone

from chargers import polling
from chargers.choices import CommandStatus, SessionStatus
from chargers.models import AvailabilitySample, ChargerCommand, ChargingSession, Connector, StatusChange
from chargers.simulator import Behaviour, connected
from chargers.tasks import poll_charger_status
from chargers.tests.conftest import run, wait_until
from chargers.tests.factories import CHARGER_PASSWORD, ChargePointFactory, ConnectorFactory, IdTokenFactory

pytestmark = pytest.mark.django_db


def test_a_silent_charger_goes_offline_and_its_connectors_unavailable():
    now = timezone.now()
    silent = ChargePointFactory(
        is_online=True, heartbeat_interval=60, last_seen_at=now - timedelta(seconds=121)
    )
    alive = ChargePointFactory(
        is_online=True, heartbeat_interval=60, last_seen_at=now - timedelta(seconds=100)
    )
    ConnectorFactory(charge_point=silent, connector_id=1, status="Charging")
    ConnectorFactory(charge_point=alive, connector_id=1, status="Available")

    result = poll_charger_status()  # the real task, called directly

    assert result["offline"] == 1
    silent.refresh_from_db()
    alive.refresh_from_db()
    assert not silent.is_online
    assert alive.is_online
    assert Connector.objects.get(charge_point=silent).status == "Unavailable"
    assert Connector.objects.get(charge_point=alive).status == "Available"
    assert StatusChange.objects.get(charge_point=silent).info == "offline"
    assert poll_charger_status()["offline"] == 0  # a second run changes nothing


def test_sessions_without_meter_values_for_hours_are_flagged_once(settings):
    settings.OCPP_SESSION_SILENT_HOURS = 3
    now = timezone.now()
    connector = ConnectorFactory()
    quiet = ChargingSession.objects.create(
        charge_point=connector.charge_point,
        connector=connector,
        id_tag="A",
        started_at=now - timedelta(hours=5),
        meter_start_wh=0,
        last_meter_at=now - timedelta(hours=4),
    )
    other = ConnectorFactory(charge_point=connector.charge_point, connector_id=2)
    busy = ChargingSession.objects.create(
        charge_point=connector.charge_point,
        connector=other,
        id_tag="B",
        started_at=now - timedelta(hours=5),
        meter_start_wh=0,
        last_meter_at=now - timedelta(minutes=5),
    )
    assert polling.sessions_flag_silent(now=now) == 1
    assert polling.sessions_flag_silent(now=now) == 0
    quiet.refresh_from_db()
    busy.refresh_from_db()
    assert quiet.needs_review
    assert quiet.review_reasons == ["no meter values for 3 hours"]
    assert not busy.needs_review
    assert quiet.status == SessionStatus.ACTIVE


def test_an_accepted_remote_start_that_never_started_is_marked():
    charger = ChargePointFactory()
    command = ChargerCommand.objects.create(
        charge_point=charger,
        action="RemoteStartTransaction",
        payload={"idTag": "X"},
        status=CommandStatus.ACCEPTED,
        completed_at=timezone.now() - timedelta(minutes=6),
    )
    assert polling.remote_starts_mark_unused(now=timezone.now()) == 1
    command.refresh_from_db()
    assert "no session started" in command.error


def test_availability_is_sampled_per_charger_and_day():
    now = timezone.now()
    up = ChargePointFactory(is_online=True, last_seen_at=now)
    down = ChargePointFactory(is_online=False)
    polling.availability_sample(now=now)
    polling.availability_sample(now=now)
    samples = {s.charge_point_id: (s.samples, s.online_samples) for s in AvailabilitySample.objects.all()}
    assert samples == {up.pk: (2, 2), down.pk: (2, 0)}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_online_charger_with_stale_status_is_asked_for_it(ocpp_server, settings):
    settings.OCPP_STATUS_STALE_SECONDS = 60
    charger = ChargePointFactory(identity="CP-STALE-1")
    ConnectorFactory(charge_point=charger, connector_id=1)
    IdTokenFactory()

    async def scenario():
        # One connector, as in the database: the answer is one StatusNotification.
        async with connected(
            ocpp_server.url, charger.identity, CHARGER_PASSWORD, behaviour=Behaviour(connectors=1)
        ) as cp:
            await cp.boot()
            from asgiref.sync import sync_to_async

            # nothing heard about status yet: the poll asks for it
            result = await sync_to_async(polling.poll)()
            # Read while still connected: on disconnect the server marks the connector
            # Unavailable, so a read after the socket closes races with that.
            status = await sync_to_async(
                lambda: wait_until(
                    lambda: Connector.objects.get(pk=connector_pk).status == "Available", timeout=30
                )
            )()
            return result, status

    connector_pk = Connector.objects.get(charge_point=charger).pk
    result, answered = run(scenario())
    assert result["status_requested"] == 1
    command = ChargerCommand.objects.get(charge_point=charger)
    assert command.status == "accepted", (command.status, command.error)
    assert command.action == "TriggerMessage"
    assert command.source == "system"
    assert answered, "the charger's StatusNotification did not set the connector Available"


def test_polling_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["chargers.poll-status"]
    assert entry["task"] == "chargers.tasks.poll_charger_status"
    assert entry["schedule"].total_seconds() == 60
    assert "evcharge.core.tasks.clear_expired_sessions" in {
        e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()
    }


def test_the_ocpp_message_log_is_pruned_after_its_retention(settings):
    from chargers.models import OcppMessage

    settings.OCPP_MESSAGE_LOG_RETENTION_DAYS = 30
    old = OcppMessage.objects.create(identity="CP-1", direction="in", raw="[2]")
    recent = OcppMessage.objects.create(identity="CP-1", direction="in", raw="[2]")
    OcppMessage.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    assert polling.ocpp_messages_purge() == 1
    assert list(OcppMessage.objects.values_list("pk", flat=True)) == [recent.pk]


def test_authorize_records_are_pruned_after_their_retention(settings):
    from chargers.models import Authorization

    settings.OCPP_AUTHORIZATION_RETENTION_DAYS = 90
    charger = ChargePointFactory()
    old = Authorization.objects.create(charge_point=charger, id_tag="OLD", status="Accepted")
    recent = Authorization.objects.create(charge_point=charger, id_tag="NEW", status="Accepted")
    Authorization.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=91))
    assert polling.ocpp_messages_purge() == 1
    assert list(Authorization.objects.values_list("pk", flat=True)) == [recent.pk]


def test_an_accepted_authorize_without_a_session_is_marked_and_one_with_a_session_is_linked(settings):
    from chargers.models import Authorization
    from chargers.services import authorize, session_start

    settings.OCPP_AUTHORIZED_NOT_STARTED_SECONDS = 300
    charger = ChargePointFactory()
    ConnectorFactory(charge_point=charger, connector_id=1)
    walked_away, charged = IdTokenFactory(uid="TAP-AND-GO"), IdTokenFactory(uid="TAP-AND-CHARGE")
    assert authorize(charge_point_id=charger.pk, id_tag=walked_away.uid)["status"] == "Accepted"
    assert authorize(charge_point_id=charger.pk, id_tag=charged.uid)["status"] == "Accepted"
    assert authorize(charge_point_id=charger.pk, id_tag="NOBODY")["status"] == "Invalid"
    started = session_start(
        charge_point_id=charger.pk,
        connector_id=1,
        id_tag=charged.uid,
        meter_start=0,
        timestamp=timezone.now().isoformat(),
    )
    assert polling.authorizations_mark_unused(now=timezone.now() + timedelta(minutes=6)) == 1
    rows = {a.id_tag: a for a in Authorization.objects.all()}
    assert rows["TAP-AND-GO"].never_started
    assert rows["TAP-AND-CHARGE"].session_id == started.transaction_id
    assert not rows["TAP-AND-CHARGE"].never_started
    assert not rows["NOBODY"].never_started  # refused: nothing was expected to start
