"""Login lockout (django-axes) glue: the username of an attempt, and the lockout answer.

The admin login form posts ``username``; the JWT endpoint posts ``email``. Both are e-mail
addresses and are compared in lower case, as the user model does.
"""

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

from evcharge.core.errors import error_body

MESSAGE = "Too many failed logins. Try again later."


def username_of(request, credentials) -> str | None:
    credentials = credentials or {}
    value = credentials.get("email") or credentials.get("username")
    if value is None and request is not None:
        data = getattr(request, "data", None) or request.POST
        value = data.get("email") or data.get("username")
    return value.strip().lower() if isinstance(value, str) else None


def retry_after_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    status = settings.AXES_HTTP_RESPONSE_CODE
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body("locked_out", MESSAGE), status=status)
    else:
        response = render(request, "accounts/locked_out.html", {"message": MESSAGE}, status=status)
    response["Retry-After"] = str(retry_after_seconds())
    return response
