"""A charger simulator built on the ``ocpp`` library: the charger side of OCPP 1.6J.

It feeds the demo (``make run`` starts a few), the end-to-end tests and the benchmarks, and
can be pointed at any central system: ``python manage.py simulate_chargers --url ws://...``.
A ``SimulatedCharger`` boots, reports status, authorizes, runs transactions with meter values,
answers every command the central system may send, and can misbehave on purpose (faults,
repeated StartTransactions, dropped connections) the way real chargers do.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import websockets
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

logger = logging.getLogger("evcharge.simulator")


def utc_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Behaviour:
    """How a simulated charger behaves; the defaults are a well-behaved charger."""

    connectors: int = 2
    meter_interval: float = 10.0
    power_w: int = 22_000
    accept_commands: bool = True
    answer_delay: float = 0.0  # seconds before answering a command (to test time-outs)
    repeat_start: bool = False  # resend StartTransaction as if our first answer was lost
    fault_rate: float = 0.0  # chance per meter tick of reporting a fault


@dataclass
class Transaction:
    connector_id: int
    id_tag: str
    transaction_id: int
    meter_wh: int
    task: asyncio.Task | None = None


@dataclass
class Configuration:
    values: dict[str, str] = field(
        default_factory=lambda: {
            "HeartbeatInterval": "300",
            "MeterValueSampleInterval": "10",
            "AuthorizeRemoteTxRequests": "false",
        }
    )


class SimulatedCharger(OcppChargePoint):
    def __init__(
        self, identity: str, connection, behaviour: Behaviour | None = None, response_timeout: int = 30
    ):
        super().__init__(identity, connection, response_timeout=response_timeout)
        self.behaviour = behaviour or Behaviour()
        self.config = Configuration()
        self.transactions: dict[int, Transaction] = {}  # by connector id
        self.register_wh = {c: 1_000_000 * c for c in range(1, self.behaviour.connectors + 1)}
        self.received: list[tuple[str, dict]] = []  # commands received, for tests

    # --- charger → central system ------------------------------------------------------

    async def boot(self, vendor: str = "evcharge", model: str = "Sim-1") -> call_result.BootNotification:
        return await self.call(call.BootNotification(charge_point_vendor=vendor, charge_point_model=model))

    async def heartbeat(self) -> call_result.Heartbeat:
        return await self.call(call.Heartbeat())

    async def status(
        self, connector_id: int, status: str, error_code: str = "NoError", timestamp: str | None = None
    ):
        return await self.call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code=error_code,
                status=status,
                timestamp=timestamp or utc_now(),
            )
        )

    async def authorize(self, id_tag: str) -> call_result.Authorize:
        return await self.call(call.Authorize(id_tag=id_tag))

    async def start_transaction(self, connector_id: int, id_tag: str, timestamp: str | None = None):
        meter = self.register_wh[connector_id]
        request = call.StartTransaction(
            connector_id=connector_id, id_tag=id_tag, meter_start=meter, timestamp=timestamp or utc_now()
        )
        result = await self.call(request)
        if self.behaviour.repeat_start:
            result = await self.call(request)  # the answer "got lost": same request again
        if result.id_tag_info["status"] == "Accepted":
            self.transactions[connector_id] = Transaction(connector_id, id_tag, result.transaction_id, meter)
            await self.status(connector_id, "Charging")
        return result

    async def meter_tick(self, connector_id: int, seconds: float) -> None:
        tx = self.transactions.get(connector_id)
        self.register_wh[connector_id] += int(self.behaviour.power_w * seconds / 3600)
        await self.call(
            call.MeterValues(
                connector_id=connector_id,
                transaction_id=tx.transaction_id if tx else None,
                meter_value=[
                    {
                        "timestamp": utc_now(),
                        "sampledValue": [
                            {
                                "value": str(self.register_wh[connector_id]),
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                                "context": "Sample.Periodic",
                            },
                            {
                                "value": str(self.behaviour.power_w),
                                "measurand": "Power.Active.Import",
                                "unit": "W",
                            },
                        ],
                    }
                ],
            )
        )
        if self.behaviour.fault_rate and random.random() < self.behaviour.fault_rate:  # noqa: S311
            await self.status(connector_id, "Faulted", error_code="GroundFailure")

    async def stop_transaction(self, connector_id: int, reason: str = "Local"):
        tx = self.transactions.pop(connector_id, None)
        if tx is None:
            return None
        if tx.task is not None and tx.task is not asyncio.current_task():
            tx.task.cancel()
        result = await self.call(
            call.StopTransaction(
                meter_stop=self.register_wh[connector_id],
                timestamp=utc_now(),
                transaction_id=tx.transaction_id,
                reason=reason,
                id_tag=tx.id_tag,
            )
        )
        await self.status(connector_id, "Finishing")
        await self.status(connector_id, "Available")
        return result

    async def charge(self, connector_id: int, id_tag: str, seconds: float) -> None:
        """A whole session: authorize, start, meter values every interval, stop."""
        await self.status(connector_id, "Preparing")
        authorized = await self.authorize(id_tag)
        if authorized.id_tag_info["status"] != "Accepted":
            await self.status(connector_id, "Available")
            return
        await self.start_transaction(connector_id, id_tag)
        elapsed = 0.0
        while elapsed < seconds and connector_id in self.transactions:
            step = min(self.behaviour.meter_interval, seconds - elapsed)
            await asyncio.sleep(step)
            elapsed += step
            await self.meter_tick(connector_id, step)
        await self.stop_transaction(connector_id)

    # --- central system → charger ------------------------------------------------------

    async def _answer(self, action: str, payload: dict, result):
        self.received.append((action, payload))
        if self.behaviour.answer_delay:
            await asyncio.sleep(self.behaviour.answer_delay)
        return result

    def _yes(self, accepted: str = "Accepted", refused: str = "Rejected") -> str:
        return accepted if self.behaviour.accept_commands else refused

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, connector_id: int | None = None, **extra):
        connector = connector_id or next(
            (c for c in range(1, self.behaviour.connectors + 1) if c not in self.transactions), None
        )
        ok = self.behaviour.accept_commands and connector is not None and connector not in self.transactions
        status = "Accepted" if ok else "Rejected"
        return await self._answer(
            "RemoteStartTransaction",
            {"idTag": id_tag, "connectorId": connector_id},
            call_result.RemoteStartTransaction(status=status),
        )

    @after(Action.remote_start_transaction)
    async def after_remote_start(self, id_tag: str, connector_id: int | None = None, **extra):
        connector = connector_id or next(
            (c for c in range(1, self.behaviour.connectors + 1) if c not in self.transactions), None
        )
        if self.behaviour.accept_commands and connector is not None and connector not in self.transactions:
            await self.status(connector, "Preparing")
            await self.start_transaction(connector, id_tag)

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int):
        known = any(tx.transaction_id == transaction_id for tx in self.transactions.values())
        status = "Accepted" if known and self.behaviour.accept_commands else "Rejected"
        return await self._answer(
            "RemoteStopTransaction",
            {"transactionId": transaction_id},
            call_result.RemoteStopTransaction(status=status),
        )

    @after(Action.remote_stop_transaction)
    async def after_remote_stop(self, transaction_id: int):
        for connector_id, tx in list(self.transactions.items()):
            if tx.transaction_id == transaction_id and self.behaviour.accept_commands:
                await self.stop_transaction(connector_id, reason="Remote")

    @on(Action.reset)
    async def on_reset(self, type: str):
        return await self._answer("Reset", {"type": type}, call_result.Reset(status=self._yes()))

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, connector_id: int):
        status = self._yes("Unlocked", "UnlockFailed")
        return await self._answer(
            "UnlockConnector", {"connectorId": connector_id}, call_result.UnlockConnector(status=status)
        )

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id: int, type: str):
        return await self._answer(
            "ChangeAvailability",
            {"connectorId": connector_id, "type": type},
            call_result.ChangeAvailability(status=self._yes()),
        )

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None):
        wanted = key or list(self.config.values)
        known = [
            {"key": k, "readonly": False, "value": self.config.values[k]}
            for k in wanted
            if k in self.config.values
        ]
        unknown = [k for k in wanted if k not in self.config.values]
        return await self._answer(
            "GetConfiguration",
            {"key": key},
            call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None),
        )

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str):
        if self.behaviour.accept_commands:
            self.config.values[key] = value
        return await self._answer(
            "ChangeConfiguration",
            {"key": key, "value": value},
            call_result.ChangeConfiguration(status=self._yes()),
        )

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, connector_id: int | None = None):
        return await self._answer(
            "TriggerMessage",
            {"requestedMessage": requested_message},
            call_result.TriggerMessage(status=self._yes()),
        )

    @after(Action.trigger_message)
    async def after_trigger_message(self, requested_message: str, connector_id: int | None = None):
        if not self.behaviour.accept_commands:
            return
        if requested_message == "StatusNotification":
            for connector in [connector_id] if connector_id else range(1, self.behaviour.connectors + 1):
                state = "Charging" if connector in self.transactions else "Available"
                await self.status(connector, state)
        elif requested_message == "Heartbeat":
            await self.heartbeat()
        elif requested_message == "BootNotification":
            await self.boot()

    @on(Action.clear_cache)
    async def on_clear_cache(self):
        return await self._answer("ClearCache", {}, call_result.ClearCache(status=self._yes()))

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None):
        return await self._answer(
            "DataTransfer",
            {"vendorId": vendor_id, "messageId": message_id, "data": data},
            call_result.DataTransfer(status=self._yes(), data=data),
        )


def basic_auth_header(identity: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{identity}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def connected(
    url: str,
    identity: str,
    password: str | None,
    behaviour: Behaviour | None = None,
    response_timeout: int = 30,
):
    """Open a socket to ``url/<identity>`` and serve it as a SimulatedCharger while inside."""
    headers = basic_auth_header(identity, password) if password is not None else {}
    async with websockets.connect(
        f"{url.rstrip('/')}/{identity}", subprotocols=["ocpp1.6"], additional_headers=headers, open_timeout=10
    ) as ws:
        charger = SimulatedCharger(identity, ws, behaviour, response_timeout=response_timeout)
        serving = asyncio.create_task(charger.start())
        try:
            yield charger
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
                await serving


async def run_charger(
    url: str,
    identity: str,
    password: str | None,
    *,
    behaviour: Behaviour,
    id_tags: list[str],
    session_seconds: float,
    idle_seconds: float,
    heartbeat: float,
    stop: asyncio.Event,
    disconnect_every: float = 0,
) -> None:
    """One simulated charger's life until ``stop`` is set: reconnects after drops."""
    while not stop.is_set():
        try:
            async with connected(url, identity, password, behaviour) as charger:
                boot = await charger.boot()
                if boot.status == "Rejected":
                    logger.warning("%s: boot rejected", identity)
                    await asyncio.sleep(boot.interval or 60)
                    continue
                heartbeat = boot.interval if boot.status == "Accepted" and not heartbeat else heartbeat or 60
                for connector in range(0, behaviour.connectors + 1):  # 0: the charger itself
                    await charger.status(connector, "Available")
                started = asyncio.get_running_loop().time()
                beats = asyncio.create_task(_heartbeats(charger, heartbeat))
                sessions = [
                    asyncio.create_task(_sessions(charger, c, id_tags, session_seconds, idle_seconds, stop))
                    for c in range(1, behaviour.connectors + 1)
                ]
                while not stop.is_set():
                    await asyncio.sleep(0.5)
                    if disconnect_every and asyncio.get_running_loop().time() - started > disconnect_every:
                        break
                for task in [beats, *sessions]:
                    task.cancel()
        except (TimeoutError, OSError, websockets.WebSocketException) as error:
            logger.warning("%s: connection problem (%s); retrying", identity, error)
            await asyncio.sleep(2)


async def _heartbeats(charger: SimulatedCharger, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await charger.heartbeat()


async def _sessions(
    charger: SimulatedCharger,
    connector: int,
    id_tags: list[str],
    seconds: float,
    idle: float,
    stop: asyncio.Event,
) -> None:
    await asyncio.sleep(random.uniform(0, idle))  # noqa: S311
    while not stop.is_set() and id_tags:
        # one tag per connector, so a charger's two connectors never charge with the same card
        await charger.charge(connector, id_tags[(connector - 1) % len(id_tags)], seconds)
        await asyncio.sleep(idle)
