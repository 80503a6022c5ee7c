"""Central system → charger: every command, through the channel layer and a real socket."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from chargers.choices import CommandStatus
from chargers.commands import InvalidCommand, command_send, command_wait
from chargers.models import ChargerCommand, ChargingSession
from chargers.simulator import Behaviour, connected
from chargers.tests.conftest import run, wait_until
from chargers.tests.factories import CHARGER_PASSWORD, ChargePointFactory, ConnectorFactory, IdTokenFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def charger():
    charge_point = ChargePointFactory(identity="CP-CMD-1")
    ConnectorFactory(charge_point=charge_point, connector_id=1)
    ConnectorFactory(charge_point=charge_point, connector_id=2)
    return charge_point


async def _send(charge_point, action, payload=None, wait=8.0) -> ChargerCommand:
    command = await sync_to_async(command_send)(
        charge_point=charge_point, action=action, payload=payload or {}
    )
    return await sync_to_async(command_wait)(command=command, seconds=wait)


ALL_COMMANDS = [
    ("Reset", {"type": "Soft"}, {"status": "Accepted"}),
    ("UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"}),
    ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}, {"status": "Accepted"}),
    ("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}, {"status": "Accepted"}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "Accepted"}),
    ("ClearCache", {}, {"status": "Accepted"}),
    ("DataTransfer", {"vendorId": "com.example", "data": "ping"}, {"status": "Accepted", "data": "ping"}),
]


@pytest.mark.parametrize(("action", "payload", "answer"), ALL_COMMANDS, ids=[c[0] for c in ALL_COMMANDS])
def test_command_reaches_the_charger_and_records_its_answer(ocpp_server, charger, action, payload, answer):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.boot()
            command = await _send(charger, action, payload)
            return command, cp.received

    command, received = run(scenario())
    assert command.status == CommandStatus.ACCEPTED, command.error
    assert command.response == answer
    assert received == [(action, {k: payload.get(k) for k in received[0][1]})]
    assert command.sent_at is not None
    assert command.completed_at is not None


def test_get_configuration_returns_the_keys(ocpp_server, charger):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.boot()
            return await _send(charger, "GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})

    command = run(scenario())
    assert command.status == CommandStatus.ACCEPTED
    assert command.response == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
        "unknownKey": ["Nope"],
    }


def test_a_refusal_is_recorded_as_rejected(ocpp_server, charger):
    async def scenario():
        async with connected(
            ocpp_server.url, charger.identity, CHARGER_PASSWORD, Behaviour(accept_commands=False)
        ) as cp:
            await cp.boot()
            return await _send(charger, "UnlockConnector", {"connectorId": 1})

    command = run(scenario())
    assert command.status == CommandStatus.REJECTED
    assert command.response == {"status": "UnlockFailed"}


def test_remote_start_and_stop_drive_a_session(ocpp_server, charger):
    IdTokenFactory(uid="APP-1")

    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.boot()
            start = await _send(charger, "RemoteStartTransaction", {"idTag": "APP-1", "connectorId": 2})
            session = await sync_to_async(
                lambda: wait_until(lambda: ChargingSession.objects.filter(charge_point=charger).first())
            )()
            stop = await _send(charger, "RemoteStopTransaction", {"transactionId": session.pk})
            await asyncio.sleep(0.5)  # the charger sends StopTransaction after answering
            return start, stop, session.pk

    start, stop, session_id = run(scenario())
    assert start.status == CommandStatus.ACCEPTED
    assert stop.status == CommandStatus.ACCEPTED
    session = wait_until(lambda: ChargingSession.objects.filter(pk=session_id, status="completed").first())
    assert session.connector.connector_id == 2
    assert session.remote_command_id == start.pk  # correlated by charger, connector and idTag
    assert session.stop_reason == "Remote"


def test_command_to_an_offline_charger_fails_at_once(charger):
    command = command_send(charge_point=charger, action="Reset", payload={"type": "Hard"})
    assert command.status == CommandStatus.FAILED
    assert "offline" in command.error


def test_invalid_payload_is_refused_before_anything_is_sent(charger):
    with pytest.raises(InvalidCommand) as refused:
        command_send(charge_point=charger, action="Reset", payload={"type": "Sideways"})
    assert "payload" in refused.value.details
    with pytest.raises(InvalidCommand):
        command_send(charge_point=charger, action="SelfDestruct", payload={})
    assert not ChargerCommand.objects.exists()


def test_no_answer_times_out_and_a_late_answer_does_not_land_on_the_next_command(ocpp_server, charger):
    # Server call timeout is 3 s in tests; this charger answers after 4 s.
    async def scenario():
        behaviour = Behaviour(answer_delay=4.0)
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD, behaviour) as cp:
            await cp.boot()
            slow = await _send(charger, "Reset", {"type": "Soft"}, wait=6)
            behaviour.answer_delay = 0
            behaviour.accept_commands = False  # the next answer differs from the late one
            following = await _send(charger, "ClearCache", {}, wait=6)
            return slow, following

    slow, following = run(scenario())
    assert slow.status == CommandStatus.TIMED_OUT
    assert following.status == CommandStatus.REJECTED
    assert following.response == {"status": "Rejected"}  # its own answer, not Reset's late "Accepted"


def test_one_call_in_flight_per_charger(ocpp_server, charger):
    # Two commands at once: the second is sent only after the first is answered.
    async def scenario():
        async with connected(
            ocpp_server.url, charger.identity, CHARGER_PASSWORD, Behaviour(answer_delay=0.5)
        ) as cp:
            await cp.boot()
            first, second = await asyncio.gather(
                _send(charger, "ClearCache", {}), _send(charger, "Reset", {"type": "Soft"})
            )
            return first, second

    first, second = run(scenario())
    assert first.status == second.status == CommandStatus.ACCEPTED
    earlier, later = sorted([first, second], key=lambda c: c.completed_at)
    assert later.sent_at >= earlier.completed_at


def test_a_command_crosses_between_two_server_processes(ocpp_server, second_ocpp_server, charger):
    # The charger is connected to the second process; the command is issued here and routed
    # through Redis to whichever process holds the socket.
    async def scenario():
        async with connected(second_ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.boot()
            return await _send(charger, "TriggerMessage", {"requestedMessage": "StatusNotification"})

    command = run(scenario())
    assert command.status == CommandStatus.ACCEPTED


def test_reconnect_to_another_process_takes_over(ocpp_server, second_ocpp_server, charger):
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as old:
            await old.boot()
            async with connected(second_ocpp_server.url, charger.identity, CHARGER_PASSWORD) as new:
                await new.boot()
                await asyncio.wait_for(old._connection.wait_closed(), 5)
                command = await _send(charger, "ClearCache", {})
                return old._connection.close_code, command, len(new.received)

    close_code, command, received_by_new = run(scenario())
    assert close_code == 4000
    assert command.status == CommandStatus.ACCEPTED
    assert received_by_new == 1


def test_a_charger_idle_for_longer_than_the_redis_read_timeout_still_gets_commands(ocpp_server, charger):
    # Regression: redis-py 8's default 5 s socket timeout equals channels-redis' BRPOP wait,
    # which killed every consumer that had been idle for 5 s.
    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.boot()
            await asyncio.sleep(7)
            return await _send(charger, "ClearCache", {})

    assert run(scenario()).status == CommandStatus.ACCEPTED


def test_a_celery_worker_sends_a_command_to_a_connected_charger(
    ocpp_server, charger, celery_worker_factory, channel_prefix
):
    # The worker is its own process: the command crosses worker → Redis → ocpp process → charger.
    from chargers.tasks import send_command

    worker = celery_worker_factory(env={"CHANNEL_LAYER_PREFIX": channel_prefix})

    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.boot()
            result = send_command.apply_async(
                args=[charger.pk, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"}],
                queue=worker.queue,
            )
            command_id = await sync_to_async(result.get)(timeout=60)
            command = await sync_to_async(
                lambda: wait_until(
                    lambda: ChargerCommand.objects.filter(pk=command_id, status="accepted").first()
                )
            )()
            return command, cp.config.values["HeartbeatInterval"]

    command, value = run(scenario())
    assert command is not None, worker.output()
    assert command.source == "system"
    assert value == "120"
