"""The API routes, enumerated from the URLconf, and a system check that each view is scoped.

``api_routes()`` is what the route-walking test uses, so a new endpoint is covered without
anyone listing it. The check warns (``accounts.W001``) when a DRF view under ``/api/`` that
works on a queryset does not go through ``accounts.scoping.ScopedQuerysetMixin``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.core.checks import Warning, register
from django.urls import URLPattern, URLResolver, get_resolver


@dataclass(frozen=True)
class ApiRoute:
    route: str  # e.g. "api/v1/id-tokens/<int:pk>/block/"
    callback: object
    name: str | None

    @property
    def view_class(self):
        return getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None)

    @property
    def methods(self) -> list[str]:
        """HTTP methods the route answers (lower case), OPTIONS/HEAD left out."""
        actions = getattr(self.callback, "actions", None)
        if actions:
            return sorted(actions)
        view_class = self.view_class
        if view_class is None:
            return ["get"]
        return sorted(
            m
            for m in view_class.http_method_names
            if m not in {"options", "head", "trace"} and hasattr(view_class, m)
        )


def _walk(patterns, prefix: str) -> Iterator[ApiRoute]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield ApiRoute(prefix + str(pattern.pattern), pattern.callback, pattern.name)


def api_routes() -> list[ApiRoute]:
    """Every route under ``api/v1/``, with format-suffix duplicates left out."""
    routes = []
    for route in _walk(get_resolver().url_patterns, ""):
        if (
            route.route.startswith("api/v1/")
            and "<drf_format_suffix" not in route.route
            and "\\.(?P<format>" not in route.route
        ):
            routes.append(route)
    return routes


def is_queryset_view(view_class) -> bool:
    from rest_framework.generics import GenericAPIView

    return (
        view_class is not None
        and issubclass(view_class, GenericAPIView)
        and (
            getattr(view_class, "queryset", None) is not None
            or "get_queryset"
            in {
                name
                for klass in view_class.__mro__[:-1]
                if klass.__module__.split(".")[0] not in {"rest_framework"}
                for name in vars(klass)
            }
        )
    )


def unscoped_api_views() -> list[ApiRoute]:
    from accounts.scoping import ScopedQuerysetMixin

    return [
        route
        for route in api_routes()
        if is_queryset_view(route.view_class) and not issubclass(route.view_class, ScopedQuerysetMixin)
    ]


@register()
def check_api_views_are_scoped(app_configs, **kwargs):
    views = {route.view_class: route.route for route in unscoped_api_views()}
    return [
        Warning(
            f"API view {view_class.__module__}.{view_class.__name__} ({route}) reads a queryset without "
            "accounts.scoping.ScopedQuerysetMixin: its tenant isolation is its own, not the one shared rule.",
            hint="Inherit ScopedQuerysetMixin first and register the model (docs/access.md).",
            id="accounts.W001",
        )
        for view_class, route in views.items()
    ]
