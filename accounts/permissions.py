"""DRF permissions of the accounts app.

``ApiKeyScopePermission`` is a default permission (``REST_FRAMEWORK`` in
``evcharge/settings/api.py``): a call with an API key needs ``<area>:read`` for safe methods
and ``<area>:write`` for the others, where ``area`` is the view's ``api_area`` attribute
(``chargers``, ``sessions``, ``billing``, ``accounts``). A view without ``api_area`` is closed
to API keys. Views that set their own ``permission_classes`` must keep this one in the list.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import ApiKey


def key_allows(api_key: ApiKey, area: str, write: bool) -> bool:
    scopes = set(api_key.scopes)
    if f"{area}:write" in scopes:
        return True
    return not write and f"{area}:read" in scopes


def view_allows_key(view, method: str, api_key: ApiKey) -> bool:
    """Whether ``view`` (a view instance or class) may be called with ``api_key`` by ``method``."""
    permission_classes = getattr(view, "permission_classes", ())
    if any(isinstance(p, type) and issubclass(p, IsPerson) for p in permission_classes):
        return False
    area = getattr(view, "api_area", None)
    return area is not None and key_allows(api_key, area, write=method.upper() not in SAFE_METHODS)


class ApiKeyScopePermission(BasePermission):
    message = "This API key's scopes do not allow this call."

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.auth, ApiKey):
            return True
        return view_allows_key(view, request.method, request.auth)


class IsPerson(BasePermission):
    """A logged-in person (JWT or session), not an API key."""

    message = "This endpoint is for people, not API keys."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and not isinstance(request.auth, ApiKey))


class IsOperatorOrReadOnly(BasePermission):
    """Anyone signed in reads; operators (staff, members and keys of an operator organization) write."""

    message = "Only operators may do this."

    def has_permission(self, request, view) -> bool:
        from accounts.scoping import actor_for_request

        if not request.user or not request.user.is_authenticated:
            return False
        return request.method in SAFE_METHODS or actor_for_request(request).is_operator


class IsOperator(BasePermission):
    message = "Only operators may do this."

    def has_permission(self, request, view) -> bool:
        from accounts.scoping import actor_for_request

        return bool(request.user and request.user.is_authenticated and actor_for_request(request).is_operator)


# The project defaults (signed in; API key scopes) plus an operator check, for views that set
# their own permission_classes.
def _defaults_and(permission) -> list:
    from rest_framework.permissions import IsAuthenticated

    return [IsAuthenticated, ApiKeyScopePermission, permission]


READ_OR_OPERATOR = _defaults_and(IsOperatorOrReadOnly)
OPERATOR_ONLY = _defaults_and(IsOperator)
