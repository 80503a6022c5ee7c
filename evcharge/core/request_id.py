"""Request ids: taken from ``X-Request-ID`` when the caller sends a sane one, made otherwise,
returned on the response, and stamped on every log line written while the request runs."""

import logging
import re
import uuid
from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


def bind_request_id(value: str | None):
    """Set the id for the current context (a request, a task, an OCPP frame); returns a token."""
    return _current.set(value)


def reset_request_id(token) -> None:
    _current.reset(token)


def _incoming(request) -> str:
    candidate = request.headers.get(HEADER, "")
    return candidate if _ACCEPTABLE.match(candidate) else new_request_id()


class RequestIdMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        request.request_id = _incoming(request)
        token = bind_request_id(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response[HEADER] = request.request_id
        return response

    async def _acall(self, request):
        request.request_id = _incoming(request)
        token = bind_request_id(request.request_id)
        try:
            response = await self.get_response(request)
        finally:
            reset_request_id(token)
        response[HEADER] = request.request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # Django logs a response's status after the middleware returned: read it off the request.
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", None) or _current.get() or "-"
        return True
