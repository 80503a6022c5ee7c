"""The OCPP 1.6J WebSocket endpoint, ``/ocpp/<identity>``: moves frames, nothing else.

Handshake: the ``ocpp1.6`` subprotocol must be offered; HTTP Basic credentials (user = the
identity) are checked by ``chargers.services.charger_authenticate``. The newest connection for
an identity wins: it registers its channel and tells the old one to close. Frames go to
``CentralSystem`` (``handlers.py``) through a queue, one at a time and in order, so a replayed
offline queue is applied in the order the charger sent it. Commands arrive as channel-layer
messages addressed to this consumer's own channel.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
import uuid

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from ocpp.exceptions import OCPPError
from ocpp.v16 import call as ocpp_call

from chargers import commands, services
from chargers.models import ChargerCommand
from chargers.ocpp import registry
from chargers.ocpp.handlers import CentralSystem, off_loop
from evcharge.core.request_id import bind_request_id

logger = logging.getLogger(__name__)
db = off_loop
SUBPROTOCOL = "ocpp1.6"
TAKEN_OVER = 4000  # close code: a newer connection for this identity took over


def _basic_credentials(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, encoded = value.decode("latin-1").partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            return user, password
    return None


class OcppConsumer(AsyncWebsocketConsumer):
    charge_point_id: int | None = None
    central: CentralSystem | None = None
    heartbeat_interval: int = 300

    async def connect(self) -> None:
        self.identity = self.scope["url_route"]["kwargs"]["identity"]
        if SUBPROTOCOL not in self.scope.get("subprotocols", []):
            logger.info("refused %s: no ocpp1.6 subprotocol offered", self.identity)
            await self.close()
            return
        credentials = _basic_credentials(self.scope.get("headers", []))
        password = None
        if credentials is not None:
            user, password = credentials
            if user != self.identity:
                logger.info("refused %s: Basic user %r is not the identity", self.identity, user)
                await self.close()
                return
        verdict = await db(services.charger_authenticate)(identity=self.identity, password=password)
        if not verdict.accepted:
            logger.info("refused %s: %s", self.identity, verdict.reason)
            await self.close()
            return
        self.charge_point_id = verdict.charge_point_id
        self.heartbeat_interval = verdict.heartbeat_interval
        await self.accept(subprotocol=SUBPROTOCOL)

        previous = registry.claim(self.identity, self.channel_name, registry.ttl_for(self.heartbeat_interval))
        if previous:
            with contextlib.suppress(Exception):  # the old process may be gone already
                await self.channel_layer.send(previous, {"type": "ocpp.takeover"})
        await db(services.charger_connected)(charge_point_id=self.charge_point_id)
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.central = CentralSystem(self.identity, self, charge_point_id=self.charge_point_id)
        self.serving = asyncio.create_task(self.central.start())
        self.calls: set[asyncio.Task] = set()
        self.command_lock = asyncio.Lock()
        logger.info("charger %s connected", self.identity)

    async def dispatch(self, message: dict) -> None:
        """As Channels', without its close_old_connections() hop to a thread before every frame:
        this consumer touches the database only through services run by ``off_loop``, which
        manage their own connections."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        if self.central is None:
            return
        self.serving.cancel()
        for task in self.calls:
            task.cancel()
        if registry.release(self.identity, self.channel_name):
            await db(services.charger_disconnected)(charge_point_id=self.charge_point_id)
        logger.info("charger %s disconnected (%s)", self.identity, code)

    # --- frames from the charger -------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.close(code=1003)  # OCPP-J frames are text
            return
        if len(text_data) > settings.OCPP_MAX_FRAME_BYTES:
            await self.close(code=1009)  # too big
            return
        await self.inbox.put(text_data)

    async def recv(self) -> str:
        """What the ``ocpp`` library reads from."""
        frame = await self.inbox.get()
        # 8 random hex digits to tell a frame's log lines apart (not a secret: no urandom call)
        bind_request_id(f"ocpp-{self.identity}-{random.getrandbits(32):08x}")
        return frame

    def refresh_registration(self) -> None:
        registry.refresh(self.identity, self.channel_name, registry.ttl_for(self.heartbeat_interval))

    # --- messages from the channel layer -----------------------------------------------

    async def ocpp_takeover(self, event: dict) -> None:
        logger.info("charger %s reconnected elsewhere; closing this socket", self.identity)
        await self.close(code=TAKEN_OVER)

    async def ocpp_command(self, event: dict) -> None:
        # Not awaited here: the consumer must keep reading frames, including the answer.
        task = asyncio.create_task(self._run_command(event["command_id"]))
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def _run_command(self, command_id: int) -> None:
        # One call in flight per charger (OCPP-J): the next command is marked sent only when
        # the previous one has its outcome.
        async with self.command_lock:
            await self._call(command_id)

    async def _call(self, command_id: int) -> None:
        unique_id = str(uuid.uuid4())
        command: ChargerCommand | None = await db(commands.command_mark_sent)(
            command_id=command_id, unique_id=unique_id
        )
        if command is None:
            return
        try:
            payload_class = getattr(ocpp_call, command.action)
            request = payload_class(**_snake(command.payload))
            result = await self.central.call(request, suppress=False, unique_id=unique_id)
        except TimeoutError:
            await db(commands.command_complete)(
                command_id=command_id, timed_out=True, error="no answer in time"
            )
        except OCPPError as error:
            await db(commands.command_complete)(
                command_id=command_id, error=f"{error.code}: {error.description}"
            )
        except Exception as error:
            logger.exception("command %s failed", command_id)
            await db(commands.command_complete)(
                command_id=command_id, error=f"{type(error).__name__}: {error}"
            )
        else:
            await db(commands.command_complete)(
                command_id=command_id, response=commands.command_response_dict(result)
            )


def _snake(payload: dict) -> dict:
    from ocpp.charge_point import camel_to_snake_case

    return camel_to_snake_case(payload)
