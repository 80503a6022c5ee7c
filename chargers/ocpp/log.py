"""The OCPP message log: every frame in and out, written in batches off the socket's path.

Frames are appended to a per-process buffer and flushed with one bulk insert every
``OCPP_LOG_FLUSH_SECONDS`` (or when the buffer is large). A process that dies loses at most
that interval of log lines, never a protocol effect: the log is a record, not the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from channels.db import database_sync_to_async
from django.conf import settings

from chargers.models import OcppMessage

logger = logging.getLogger(__name__)

_buffer: list[OcppMessage] = []
_flusher: asyncio.Task | None = None
_FLUSH_AT = 500


def _describe(raw: str) -> tuple[int | None, str, str]:
    try:
        frame = json.loads(raw)
        message_type = int(frame[0])
        unique_id = str(frame[1])[:64]
        action = str(frame[2])[:48] if message_type == 2 else ""
        return message_type, unique_id, action
    except (ValueError, TypeError, IndexError, KeyError):
        return None, "", ""


def record(*, identity: str, charge_point_id: int | None, direction: str, raw: str, action: str = "") -> None:
    if not settings.OCPP_MESSAGE_LOG:
        return
    message_type, unique_id, parsed_action = _describe(raw)
    _buffer.append(
        OcppMessage(
            charge_point_id=charge_point_id,
            identity=identity,
            direction=direction,
            message_type=message_type,
            unique_id=unique_id,
            action=action or parsed_action,
            raw=raw[: settings.OCPP_MAX_FRAME_BYTES],
        )
    )
    _ensure_flusher()
    if len(_buffer) >= _FLUSH_AT:
        asyncio.get_running_loop().create_task(flush())


def _ensure_flusher() -> None:
    global _flusher
    if _flusher is None or _flusher.done():
        _flusher = asyncio.get_running_loop().create_task(_flush_forever())


async def _flush_forever() -> None:
    while True:
        await asyncio.sleep(settings.OCPP_LOG_FLUSH_SECONDS)
        await flush()


def _write(rows: list[OcppMessage]) -> None:
    OcppMessage.objects.bulk_create(rows, batch_size=500)


async def flush() -> None:
    if not _buffer:
        return
    rows = _buffer[:]
    del _buffer[: len(rows)]
    try:
        await database_sync_to_async(_write)(rows)
    except Exception:
        # A charger deleted meanwhile, or the database away: keep the rest of the log going.
        logger.exception("could not write %d OCPP log rows", len(rows))
        with contextlib.suppress(Exception):
            for row in rows:
                row.charge_point_id = None
            await database_sync_to_async(_write)(rows)
