"""Walks EVERY API route of the URLconf as every kind of caller and checks who gets what.

Routes come from ``accounts.checks.api_routes()``, so a new endpoint is walked without anyone
listing it. For a route over a model, the test needs to know how to make one object of
tenant A and who may see it: add the model to ``OBJECTS`` below (the test fails with a
message naming the model until you do). The rules checked:

- anonymous callers get 401 on every method of every route but the login endpoints;
- every authenticated caller may list; a list never shows another tenant's object;
- a caller who may see the object gets 200 on its detail route; anyone else gets 404 on
  every method of it (never 403, which would confirm the object exists) — except an API key
  on a view its scopes do not open at all, which gets 403 whatever the id;
- every view that reads a queryset goes through ``ScopedQuerysetMixin``.
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from rest_framework.permissions import SAFE_METHODS
from rest_framework.test import APIClient

from accounts.checks import ApiRoute, api_routes, unscoped_api_views
from accounts.permissions import IsPerson, key_allows
from accounts.tests.conftest import World, jwt_client, key_client

pytestmark = pytest.mark.django_db

PUBLIC_ROUTES = {"api/v1/auth/token/", "api/v1/auth/token/refresh/"}

# Views that scope their rows by their own selectors and have not moved to ScopedQuerysetMixin
# yet. They are still walked for 401 (anonymous) and 403 (API keys outside their scopes); the
# 200/404 matrix covers them once they move (then delete the line, and add their models to
# OBJECTS). Keep this list shrinking: a new view never belongs here.
PENDING_ADOPTION: set[str] = set()


def dotted(view_class) -> str:
    return f"{view_class.__module__}.{view_class.__name__}"


OWN_SIDE = {"driver_a", "owner_a", "admin_a", "key_a", "staff", "operator_member"}
MANAGERS_A = {"owner_a", "admin_a", "staff", "operator_member"}
EVERYONE = {
    "driver_a",
    "owner_a",
    "admin_a",
    "key_a",
    "driver_b",
    "admin_b",
    "key_b",
    "loner",
    "staff",
    "operator_member",
}


def _charge_point():
    from chargers.models import ChargePoint, Site

    site = Site.objects.create(name="Depot", country="DE", latitude=52.5, longitude=13.4)
    return ChargePoint.objects.create(site=site, identity=f"CP-{uuid.uuid4().hex[:12]}")


def _charging_session(world: World):
    from django.utils import timezone

    from chargers.models import ChargingSession, Connector

    existing = ChargingSession.objects.filter(id_token=world.a.token).first()
    if existing is not None:  # one live session per idTag: routes share it
        return existing
    charge_point = _charge_point()
    connector = Connector.objects.create(charge_point=charge_point, connector_id=1)
    return ChargingSession.objects.create(
        charge_point=charge_point,
        connector=connector,
        id_tag=world.a.token.uid,
        id_token=world.a.token,
        started_at=timezone.now(),
        meter_start_wh=0,
    )


def _command(world: World):
    from chargers.models import ChargerCommand

    return ChargerCommand.objects.create(
        charge_point=_charge_point(), action="Reset", payload={"type": "Soft"}, requested_by=world.a.driver
    )


def _billing(world: World) -> dict:
    """Tenant A's money, made once per world: a priced CDR of A's driver, billed to A's
    account, on an issued invoice with a payment and a credit note."""
    cached = getattr(world, "_billing", None)
    if cached is not None:
        return cached
    from datetime import UTC, datetime
    from decimal import Decimal

    from billing import services
    from billing.models import BillingAccount, Invoice
    from billing.tests.factories import SessionFactory, default_tariff

    tariff = default_tariff(energy="0.30", vat="19")
    assignment = tariff.assignments.get()
    BillingAccount.objects.create(
        name=world.a.organization.name, organization=world.a.organization, currency="EUR"
    )
    session = SessionFactory(
        id_token=world.a.token,
        id_tag=world.a.token.uid,
        started_at=datetime(2026, 3, 10, 8, tzinfo=UTC),
        meter_stop_wh=10_000,
    )
    cdr = services.cdr_create_for_session(session_id=session.pk)
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC), render_pdfs=False)
    invoice = Invoice.objects.get(account__organization=world.a.organization)
    payment = services.payment_record(invoice=invoice, amount=Decimal("1.00"), reference="matrix-1")
    credit_note = services.credit_note_create(cdr=cdr, amount_excl_vat=Decimal("0.10"), reason="matrix")
    world._billing = {
        "tariff": tariff,
        "assignment": assignment,
        "account": invoice.account,
        "cdr": cdr,
        "invoice": invoice,
        "payment": payment,
        "credit_note": credit_note,
    }
    return world._billing


OPERATORS = {"staff", "operator_member"}
BILLING_MANAGERS_A = MANAGERS_A | {"key_a"}


@dataclass
class ObjectCase:
    make: Callable[[World], object]  # one object of tenant A
    visible_to: set[str]


OBJECTS: dict[str, ObjectCase] = {
    "accounts.idtoken": ObjectCase(lambda w: w.a.token, OWN_SIDE),
    "accounts.membership": ObjectCase(lambda w: w.a.driver.memberships.get(), OWN_SIDE),
    "accounts.organization": ObjectCase(lambda w: w.a.organization, OWN_SIDE),
    "accounts.apikey": ObjectCase(lambda w: w.a.api_key, MANAGERS_A),
    "chargers.chargingsession": ObjectCase(_charging_session, OWN_SIDE),
    "chargers.chargepoint": ObjectCase(lambda w: _charge_point(), EVERYONE),
    "chargers.chargercommand": ObjectCase(_command, {"driver_a", "staff", "operator_member"}),
    "billing.tariff": ObjectCase(lambda w: _billing(w)["tariff"], EVERYONE),
    "billing.tariffassignment": ObjectCase(lambda w: _billing(w)["assignment"], OPERATORS),
    "billing.billingaccount": ObjectCase(lambda w: _billing(w)["account"], BILLING_MANAGERS_A),
    "billing.cdr": ObjectCase(lambda w: _billing(w)["cdr"], OWN_SIDE),
    "billing.invoice": ObjectCase(lambda w: _billing(w)["invoice"], BILLING_MANAGERS_A),
    "billing.payment": ObjectCase(lambda w: _billing(w)["payment"], BILLING_MANAGERS_A),
    "billing.creditnote": ObjectCase(lambda w: _billing(w)["credit_note"], OWN_SIDE),
}


@pytest.fixture
def callers(world) -> dict[str, tuple[APIClient, object]]:
    """role -> (client, ApiKey or None)."""
    return {
        "anonymous": (APIClient(), None),
        "driver_a": (jwt_client(world.a.driver), None),
        "owner_a": (jwt_client(world.a.owner), None),
        "admin_a": (jwt_client(world.a.admin), None),
        "key_a": (key_client(world.a.key), world.a.api_key),
        "driver_b": (jwt_client(world.b.driver), None),
        "admin_b": (jwt_client(world.b.admin), None),
        "key_b": (key_client(world.b.key), world.b.api_key),
        "loner": (jwt_client(world.loner), None),
        "staff": (jwt_client(world.staff), None),
        "operator_member": (jwt_client(world.operator_member), None),
    }


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    settings.API_RATE_LIMITS = {"default": {"user": None, "api_key": None, "anon": None}}


_REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def params_of(route: ApiRoute) -> list[str]:
    return _REGEX_GROUP.findall(route.route) + _CONVERTER.findall(route.route)


def url_for(route: ApiRoute, obj) -> str:
    def value(name: str) -> str:
        if name == "pk":
            return str(obj.pk)
        if name.endswith("_pk"):
            return str(getattr(obj, f"{name[:-3]}_id"))
        if name == getattr(route.view_class, "lookup_url_kwarg", None):
            return str(getattr(obj, route.view_class.lookup_field))
        raise AssertionError(f"{route.route}: no rule for the URL parameter {name!r}; extend url_for()")

    path = _REGEX_GROUP.sub(lambda m: value(m.group(1)), route.route)
    path = _CONVERTER.sub(lambda m: value(m.group(1)), path)
    return "/" + path.replace("^", "").replace("$", "")


def model_of(route: ApiRoute):
    queryset = getattr(route.view_class, "queryset", None)
    return queryset.model if queryset is not None else None


def key_may_call(route: ApiRoute, method: str, api_key) -> bool:
    view_class = route.view_class
    action = (getattr(route.callback, "actions", None) or {}).get(method)
    handler = getattr(view_class, action, None) if action else None
    # An @action may set its own permission_classes; the view's api_area still decides.
    permission_classes = getattr(handler, "kwargs", {}).get(
        "permission_classes", view_class.permission_classes
    )
    if any(issubclass(p, IsPerson) for p in permission_classes):
        return False
    area = getattr(view_class, "api_area", None)
    return area is not None and key_allows(api_key, area, write=method.upper() not in SAFE_METHODS)


def call(client: APIClient, method: str, url: str):
    return getattr(client, method)(url, {}, format="json") if method != "get" else client.get(url)


class _Missing:
    """An object no one has: what ``url_for`` makes of it is an id that does not exist."""

    def __init__(self, like, route: ApiRoute):
        self.pk = 2_000_000_000
        self._field = getattr(route.view_class, "lookup_field", "pk")
        self._like = like

    def __getattr__(self, name):
        if name == self._field:
            return "NO-SUCH-ID"
        if name.endswith("_id"):
            return getattr(self._like, name)  # parents stay real: only the object itself is missing
        raise AttributeError(name)


def ident(route: ApiRoute, obj):
    """What the API calls the object in its ``id`` field: the lookup field (a tariff's OCPI id) or pk."""
    field = getattr(route.view_class, "lookup_field", "pk")
    return obj.pk if field in ("pk", "id") else getattr(obj, field)


def ids_in(response) -> set:
    body = response.json()
    rows = body["results"] if isinstance(body, dict) and "results" in body else body
    return {row.get("id") for row in rows} if isinstance(rows, list) else set()


def test_there_are_routes_to_walk():
    routes = {r.route for r in api_routes()}
    assert "api/v1/me/" in routes
    assert any("id-tokens" in r for r in routes)


def test_every_queryset_view_is_tenant_scoped():
    unscoped = {dotted(route.view_class) for route in unscoped_api_views()}
    assert unscoped - PENDING_ADOPTION == set()


class _AnyId:
    pk = 1

    def __getattr__(self, name):
        return 1


def test_anonymous_gets_401_everywhere_but_login(callers):
    anonymous, _ = callers["anonymous"]
    for route in api_routes():
        if route.route in PUBLIC_ROUTES:
            continue
        url = url_for(route, _AnyId())  # authentication comes before any lookup
        for method in route.methods:
            response = call(anonymous, method, url)
            assert response.status_code == 401, (route.route, method, response.status_code)


def test_api_keys_get_403_wherever_their_scopes_do_not_reach(world, callers):
    """Also where a view sets its own permission_classes: the authentication checks scopes too."""
    for route in api_routes():
        if route.route in PUBLIC_ROUTES:
            continue
        url = url_for(route, _AnyId())
        for role in ("key_a", "key_b"):
            client, api_key = callers[role]
            for method in route.methods:
                if not key_may_call(route, method, api_key):
                    response = call(client, method, url)
                    assert response.status_code == 403, (route.route, method, role, response.status_code)


def test_the_allowed_and_404_matrix_for_every_route(world, callers):
    checked = 0
    for route in api_routes():
        if route.route in PUBLIC_ROUTES or dotted(route.view_class) in PENDING_ADOPTION:
            continue
        model = model_of(route)
        params = params_of(route)
        if model is None:
            assert not params, f"{route.route}: a parameterised route without a queryset; add a case here"
            for role, (client, api_key) in callers.items():
                if role == "anonymous" or "get" not in route.methods:
                    continue
                expected = 403 if api_key is not None and not key_may_call(route, "get", api_key) else 200
                assert client.get(url_for(route, None)).status_code == expected, (route.route, role)
            continue

        label = model._meta.label_lower
        assert label in OBJECTS, f"{route.route} serves {label}: add it to OBJECTS in {__file__}"
        case = OBJECTS[label]
        obj = case.make(world)
        url = url_for(route, obj)
        lookup = getattr(route.view_class, "lookup_url_kwarg", None) or "pk"
        is_list = "pk" not in params and lookup not in params
        for role, (client, api_key) in callers.items():
            if role == "anonymous":
                continue
            for method in route.methods:
                if api_key is not None and not key_may_call(route, method, api_key):
                    response = call(client, method, url)
                    assert response.status_code == 403, (route.route, method, role, response.status_code)
                    continue
                if role in case.visible_to:
                    if method != "get":
                        continue  # writes by the allowed are tested per endpoint, not blindly here
                    response = client.get(url)
                    assert response.status_code == 200, (route.route, role, response.status_code)
                    if is_list:
                        assert ident(route, obj) in ids_in(response), (
                            route.route,
                            role,
                            "own object missing",
                        )
                    checked += 1
                elif is_list and method == "get":
                    response = client.get(url)
                    # 403 only where the view refuses this caller whatever the rows (back-office lists)
                    assert response.status_code in {200, 403, 404}, (route.route, role, response.status_code)
                    if response.status_code == 200:
                        assert ident(route, obj) not in ids_in(response), (
                            route.route,
                            role,
                            "another tenant's row listed",
                        )
                    checked += 1
                elif not is_list:
                    # The answer must not tell the object exists: the same as for an id that does not
                    # exist, and that is 404 -- or 403 where the view refuses this caller outright.
                    response = call(client, method, url)
                    missing = call(client, method, url_for(route, _Missing(obj, route)))
                    assert response.status_code == missing.status_code, (route.route, method, role)
                    assert response.status_code in {403, 404}, (
                        route.route,
                        method,
                        role,
                        response.status_code,
                    )
                    checked += 1
    assert checked > 50
