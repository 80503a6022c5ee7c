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
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from chargers.models import OcppMessage

logger = logging.getLogger(__name__)

# (charge_point_id, identity, direction, message_type, unique_id, action, raw, created_at)
Row = tuple[int | None, str, str, int | None, str, str, str, datetime]
_buffer: list[Row] = []
_flusher: asyncio.Task | None = None
_FLUSH_AT = 500
_COLUMNS = (
    "charge_point_id",
    "identity",
    "direction",
    "message_type",
    "unique_id",
    "action",
    "raw",
    "created_at",
)


def describe(frame) -> tuple[int | None, str, str]:
    """(message type, unique id, action) of a parsed frame; (None, "", "") if it is no OCPP array."""
    try:
        message_type = int(frame[0])
        unique_id = str(frame[1])[:64]
        action = str(frame[2])[:48] if message_type == 2 else ""
        return message_type, unique_id, action
    except (ValueError, TypeError, IndexError, KeyError):
        return None, "", ""


def _describe(raw: str) -> tuple[int | None, str, str]:
    try:
        return describe(json.loads(raw))
    except (ValueError, TypeError):
        return None, "", ""


def record(
    *,
    identity: str,
    charge_point_id: int | None,
    direction: str,
    raw: str,
    described: tuple[int | None, str, str] | None = None,
) -> None:
    """Log one frame. ``described`` is ``describe()`` of the frame when the caller has parsed it
    already (one JSON parse per frame, not two)."""
    if not settings.OCPP_MESSAGE_LOG:
        return
    message_type, unique_id, action = described if described is not None else _describe(raw)
    _buffer.append(
        (
            charge_point_id,
            identity,
            direction,
            message_type,
            unique_id,
            action,
            raw[: settings.OCPP_MAX_FRAME_BYTES],
            datetime.now(UTC),
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


def _write(rows: list[Row]) -> None:
    """One COPY on PostgreSQL (no model instances: this runs for every frame); a bulk insert
    elsewhere."""
    if connection.vendor == "postgresql":
        table = OcppMessage._meta.db_table
        with (
            connection.cursor() as cursor,
            cursor.connection.cursor().copy(f"COPY {table} ({', '.join(_COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    OcppMessage.objects.bulk_create([OcppMessage(**dict(zip(_COLUMNS, row, strict=True))) for row in rows])


async def flush() -> None:
    if not _buffer:
        return
    rows = _buffer[:]
    del _buffer[: len(rows)]
    try:
        await database_sync_to_async(_write, thread_sensitive=False)(rows)
    except Exception:
        # A charger deleted meanwhile, or the database away: keep the log going without the link.
        logger.exception("could not write %d OCPP log rows; retrying without charger links", len(rows))
        with contextlib.suppress(Exception):
            await database_sync_to_async(_write, thread_sensitive=False)([(None, *row[1:]) for row in rows])
