"""One error vocabulary for the whole API.

Every 4xx/5xx answer from ``/api/`` has the same shape::

    {"error": {"code": "validation_error", "message": "...", "details": {...}}, "request_id": "..."}

Domain code raises :class:`DomainError` subclasses (each with a code and an HTTP status);
DRF's own exceptions and Django's 404/500 are rendered into the same envelope here.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from evcharge.core.request_id import current_request_id

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal by the domain: carries a stable ``code``, an HTTP status and details."""

    code = "domain_error"
    status = status.HTTP_400_BAD_REQUEST
    message = "The request cannot be carried out."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: Any = None,
    ):
        self.message = message or self.message
        self.code = code or self.code
        self.status = status_code or self.status
        self.details = details
        super().__init__(self.message)


class NotFound(DomainError):
    code = "not_found"
    status = status.HTTP_404_NOT_FOUND
    message = "Not found."


class Conflict(DomainError):
    code = "conflict"
    status = status.HTTP_409_CONFLICT
    message = "The request conflicts with the current state."


def error_body(code: str, message: str, details: Any = None) -> dict:
    return {
        "error": {"code": code, "message": message, "details": details if details is not None else {}},
        "request_id": current_request_id(),
    }


def _message_of(detail: Any) -> str:
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail and isinstance(detail[0], str):
        return detail[0]
    return "Invalid input."


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF ``EXCEPTION_HANDLER``: renders every exception raised in an API view."""
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    if isinstance(exc, drf_exceptions.APIException):
        set_rollback()
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, drf_exceptions.ValidationError):
            code, message, details = "validation_error", "Invalid input.", exc.detail
        else:
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else exc.default_code
            message, details = _message_of(exc.detail), None
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)

    logger.exception("Unhandled error in API view", exc_info=exc)
    set_rollback()
    return Response(
        error_body("server_error", "An unexpected error occurred."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler404(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if _is_api(request):
        return JsonResponse(error_body("server_error", "An unexpected error occurred."), status=500)
    from django.views.defaults import server_error

    return server_error(request)
