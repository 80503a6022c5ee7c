"""The central system's side of one charger's OCPP 1.6J conversation.

One handler per charger-initiated message, named after it; each only translates between the
wire and a service in ``chargers.services``. Framing, CALLERRORs for what cannot be parsed and
the message log are in ``route_message``/``_send``; the socket itself is the consumer's.
"""

from __future__ import annotations

import json
import logging
import re

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone
from ocpp import messages as ocpp_messages
from ocpp.exceptions import (
    NotImplementedError,
    NotSupportedError,
    OCPPError,
    PropertyConstraintViolationError,
    ProtocolError,
)
from ocpp.messages import CallError, MessageType, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, DataTransferStatus

from chargers import services
from chargers.choices import Direction
from chargers.ocpp import log
from evcharge.core.errors import DomainError

logger = logging.getLogger(__name__)

# The library validates each payload in a thread-pool executor by default: two thread hops per
# message for a JSON-schema check that takes microseconds. Validate inline instead.
ocpp_messages.ASYNC_VALIDATION = False


def off_loop(function):
    """``function`` run in the thread pool, each thread with its own database connection.

    Not Channels' default single "thread-sensitive" thread: that would put every charger's
    database work in one queue. A charger's own messages still run one at a time, in order
    (``ChargePoint.start`` awaits each before reading the next).
    """
    return database_sync_to_async(function, thread_sensitive=False)


async def service(function, **kwargs):
    """Run a (sync, atomic) service off the event loop. A value the domain cannot use becomes
    PropertyConstraintViolation: the payload passed the schema, but a field is invalid."""
    try:
        return await off_loop(function)(**kwargs)
    except DomainError as error:
        raise PropertyConstraintViolationError(description=error.message, details={}) from None


_UNIQUE_ID = re.compile(r'^\s*\[\s*\d+\s*,\s*"([^"]{1,64})"')


def _sanitized(details) -> dict:
    """CALLERROR details must be plain JSON; the library sometimes puts message objects in."""
    if isinstance(details, dict):
        return {key: value for key, value in details.items() if isinstance(value, str | int | float | bool)}
    return {}


class CentralSystem(OcppChargePoint):
    def __init__(self, identity: str, connection, *, charge_point_id: int):
        super().__init__(
            identity,
            connection,
            response_timeout=settings.OCPP_CALL_TIMEOUT_SECONDS,
            logger=logging.getLogger("ocpp"),
        )
        self.charge_point_id = charge_point_id
        self._last_seen_write = timezone.now()  # the consumer recorded the connection just now

    # --- framing -----------------------------------------------------------------------

    async def route_message(self, raw_msg: str) -> None:
        try:
            frame = json.loads(raw_msg)
        except ValueError:
            frame = None  # unpack() below answers it
        log.record(
            identity=self.id,
            charge_point_id=self.charge_point_id,
            direction=Direction.IN,
            raw=raw_msg,
            described=log.describe(frame),
        )
        await self._touch()
        if _is_heartbeat(frame):
            # The most frequent frame by far, answered without the generic machinery (schema
            # validation, dataclass round trip): ``_is_heartbeat`` is exactly the Heartbeat
            # schema (an empty object), and the answer is what ``on_heartbeat`` gives.
            unique_id = frame[1]
            await self._send(
                json.dumps([3, unique_id, {"currentTime": _now()}], separators=(",", ":")),
                described=(3, unique_id[:64], ""),
            )
            return
        try:
            message = unpack(raw_msg)
        except OCPPError as error:
            # The library only logs what it cannot parse; a charger deserves an answer.
            match = _UNIQUE_ID.match(raw_msg)
            await self._send_error(match.group(1) if match else "-1", error)
            return
        if message.message_type_id == MessageType.Call:
            if not isinstance(message.payload, dict) or not isinstance(message.action, str):
                await self._send_error(
                    str(message.unique_id), ProtocolError(details={"cause": "bad CALL frame"})
                )
                return
            if message.action not in self.route_map:
                # OCPP-J 1.6 §4.2.3: an action we do not know is NotImplemented; one we know but
                # do not take from a charger is NotSupported (the library has these reversed).
                known = message.action in Action._value2member_map_
                error = NotSupportedError if known else NotImplementedError
                await self._send_error(
                    message.unique_id, error(details={"cause": f"action {message.action}"})
                )
                return
            try:
                await self._handle_call(message)
            except OCPPError as error:
                await self._send_error(message.unique_id, error)
        elif message.message_type_id in (MessageType.CallResult, MessageType.CallError):
            self._response_queue.put_nowait(message)

    async def _send_error(self, unique_id: str, error: OCPPError) -> None:
        frame = CallError(
            unique_id=str(unique_id)[:64],
            error_code=error.code,
            error_description=error.description,
            error_details=_sanitized(error.details),
        )
        await self._send(frame.to_json())

    async def _send(self, message: str, described: tuple[int | None, str, str] | None = None) -> None:
        log.record(
            identity=self.id,
            charge_point_id=self.charge_point_id,
            direction=Direction.OUT,
            raw=message,
            described=described,
        )
        await self._connection.send(message)

    async def _touch(self) -> None:
        """Remember we heard from the charger; the database row at most every so often."""
        now = timezone.now()
        every = min(60, max(1, self._heartbeat_interval // 2))
        if self._last_seen_write is None or (now - self._last_seen_write).total_seconds() >= every:
            self._last_seen_write = now
            await service(services.charger_seen, charge_point_id=self.charge_point_id, at=now)
            self._connection.refresh_registration()

    @property
    def _heartbeat_interval(self) -> int:
        return getattr(self._connection, "heartbeat_interval", 300)

    # --- charger → central system ------------------------------------------------------

    @on(Action.boot_notification)
    async def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str, **fields):
        status, interval = await service(
            services.charger_boot,
            charge_point_id=self.charge_point_id,
            charge_point_vendor=charge_point_vendor,
            charge_point_model=charge_point_model,
            **fields,
        )
        self._connection.heartbeat_interval = interval
        return call_result.BootNotification(current_time=_now(), interval=interval, status=status)

    @on(Action.heartbeat)
    async def on_heartbeat(self):
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    async def on_status_notification(self, connector_id: int, error_code: str, status: str, **fields):
        await service(
            services.connector_status_record,
            charge_point_id=self.charge_point_id,
            connector_id=connector_id,
            status=status,
            error_code=error_code,
            **fields,
        )
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str):
        info = await service(services.authorize, charge_point_id=self.charge_point_id, id_tag=id_tag)
        return call_result.Authorize(id_tag_info=info)

    @on(Action.start_transaction)
    async def on_start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: str,
        reservation_id: int | None = None,
    ):
        result = await service(
            services.session_start,
            charge_point_id=self.charge_point_id,
            connector_id=connector_id,
            id_tag=id_tag,
            meter_start=meter_start,
            timestamp=timestamp,
            reservation_id=reservation_id,
        )
        return call_result.StartTransaction(
            transaction_id=result.transaction_id, id_tag_info={"status": result.status}
        )

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int, **fields):
        result = await service(
            services.session_stop,
            charge_point_id=self.charge_point_id,
            transaction_id=transaction_id,
            meter_stop=meter_stop,
            timestamp=timestamp,
            **fields,
        )
        info = {"status": result.id_tag_status} if result.id_tag_status else None
        return call_result.StopTransaction(id_tag_info=info)

    @on(Action.meter_values)
    async def on_meter_values(self, connector_id: int, meter_value: list, transaction_id: int | None = None):
        await service(
            services.meter_values_record,
            charge_point_id=self.charge_point_id,
            connector_id=connector_id,
            meter_value=meter_value,
            transaction_id=transaction_id,
        )
        return call_result.MeterValues()

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None, data: str | None = None):
        # No vendor extensions are registered; the frame itself is kept in the message log.
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status_notification(self, status: str):
        await service(
            services.charger_diagnostics_status, charge_point_id=self.charge_point_id, status=status
        )
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(self, status: str):
        await service(services.charger_firmware_status, charge_point_id=self.charge_point_id, status=status)
        return call_result.FirmwareStatusNotification()


def _is_heartbeat(frame) -> bool:
    """``[2, "<id>", "Heartbeat", {}]``: a CALL whose payload passes the Heartbeat schema (an
    object with no properties; ``additionalProperties`` is false)."""
    return (
        type(frame) is list
        and len(frame) == 4
        and frame[0] == 2
        and frame[2] == "Heartbeat"
        and type(frame[1]) is str
        and type(frame[3]) is dict
        and not frame[3]
    )


def _now() -> str:
    return timezone.now().isoformat().replace("+00:00", "Z")
