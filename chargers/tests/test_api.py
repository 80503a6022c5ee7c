"""The chargers, commands and sessions API."""

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Membership, Organization, User
from chargers import live
from chargers.models import ChargePoint, ChargerCommand, ChargingSession
from chargers.services import charger_password_check
from chargers.simulator import connected
from chargers.tests.conftest import run, wait_until
from chargers.tests.factories import (
    CHARGER_PASSWORD,
    ChargePointFactory,
    ConnectorFactory,
    IdTokenFactory,
    SiteFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator():
    return User.objects.create_user(email="ops@example.com", password="x", is_staff=True)


@pytest.fixture
def driver():
    return User.objects.create_user(email="dana@example.com", password="x")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def network():
    """Berlin (two chargers), Potsdam (one), Munich (one)."""
    berlin = SiteFactory(name="Berlin Mitte", latitude="52.520000", longitude="13.405000")
    potsdam = SiteFactory(name="Potsdam", latitude="52.390000", longitude="13.065000")
    munich = SiteFactory(name="Munich", latitude="48.137000", longitude="11.575000")
    fast = ChargePointFactory(site=berlin, identity="BER-FAST", is_online=True)
    ConnectorFactory(
        charge_point=fast, connector_id=1, standard="IEC_62196_T2_COMBO", max_power_kw=150, status="Available"
    )
    ConnectorFactory(
        charge_point=fast, connector_id=2, standard="CHADEMO", max_power_kw=50, status="Charging"
    )
    slow = ChargePointFactory(site=berlin, identity="BER-AC", is_online=True)
    ConnectorFactory(
        charge_point=slow,
        connector_id=1,
        standard="IEC_62196_T2",
        power_type="AC_3_PHASE",
        max_power_kw=22,
        status="Charging",
    )
    offline = ChargePointFactory(site=potsdam, identity="POT-1", is_online=False)
    ConnectorFactory(
        charge_point=offline,
        connector_id=1,
        standard="IEC_62196_T2_COMBO",
        max_power_kw=50,
        status="Available",
    )
    far = ChargePointFactory(site=munich, identity="MUC-1", is_online=True)
    ConnectorFactory(
        charge_point=far, connector_id=1, standard="IEC_62196_T2_COMBO", max_power_kw=300, status="Available"
    )
    return {"berlin": berlin, "fast": fast, "slow": slow, "offline": offline, "far": far}


def identities(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["identity"] for row in response.json()["results"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["BER-AC", "BER-FAST", "MUC-1", "POT-1"]),
        ({"near": "52.52,13.40", "radius_km": "5"}, ["BER-AC", "BER-FAST"]),  # nearest first, then pk
        ({"near": "52.52,13.40", "radius_km": "40"}, ["BER-AC", "BER-FAST", "POT-1"]),
        ({"connector_standard": "CHADEMO"}, ["BER-FAST"]),
        ({"min_power_kw": "100"}, ["BER-FAST", "MUC-1"]),
        ({"available": "true"}, ["BER-FAST", "MUC-1"]),  # POT-1 is offline, BER-AC busy
        ({"available": "true", "near": "52.52,13.40", "radius_km": "40"}, ["BER-FAST"]),
    ],
)
def test_charger_filters(driver, network, query, expected):
    response = client_for(driver).get("/api/v1/chargers/", query)
    got = identities(response)
    assert sorted(got) == sorted(expected)
    if "near" in query:
        distances = [row["distance_km"] for row in response.json()["results"]]
        assert distances == sorted(distances)


def test_site_filter(driver, network):
    assert sorted(
        identities(client_for(driver).get("/api/v1/chargers/", {"site": network["berlin"].pk}))
    ) == [
        "BER-AC",
        "BER-FAST",
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"near": "north"}, "near"),
        ({"near": "95,13"}, "near"),
        ({"near": "52,13", "radius_km": "0"}, "radius_km"),
        ({"min_power_kw": "lots"}, "min_power_kw"),
        ({"connector_standard": "BANANA"}, "connector_standard"),
    ],
)
def test_bad_filters_are_400_with_the_field(driver, network, query, field):
    response = client_for(driver).get("/api/v1/chargers/", query)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_live_status_comes_from_the_cache_in_a_fixed_number_of_queries(
    driver, network, django_assert_num_queries
):
    fast = network["fast"]
    live.connector_status(fast.pk, 2, "Finishing", "NoError", timezone.now())
    client = client_for(driver)
    client.get("/api/v1/chargers/")  # warm up the session/auth caches
    for _ in range(3):
        ChargePointFactory(site=network["berlin"])  # more chargers, same number of queries
    with django_assert_num_queries(4):  # user, count, chargers+sites, connectors
        response = client.get("/api/v1/chargers/")
    rows = {row["identity"]: row for row in response.json()["results"]}
    connectors = {c["connector_id"]: c["status"] for c in rows["BER-FAST"]["connectors"]}
    assert connectors == {1: "Available", 2: "Finishing"}  # 2 from the live cache, 1 from the database
    assert rows["BER-FAST"]["online"] is True


def test_operator_registers_a_charger_and_gets_its_password_once(operator, network):
    response = client_for(operator).post(
        "/api/v1/chargers/",
        {
            "site": network["berlin"].pk,
            "identity": "BER-NEW-1",
            "vendor": "ACME",
            "connectors": [
                {
                    "connector_id": 1,
                    "standard": "IEC_62196_T2_COMBO",
                    "power_type": "DC",
                    "max_power_kw": "150",
                },
                {
                    "connector_id": 2,
                    "standard": "IEC_62196_T2",
                    "power_type": "AC_3_PHASE",
                    "max_power_kw": "22",
                },
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    password = body["ocpp_password"]
    assert len(password) >= 24
    charge_point = ChargePoint.objects.get(identity="BER-NEW-1")
    assert charge_point.password_hash != password
    assert charger_password_check(password, charge_point.password_hash)
    assert [c["connector_id"] for c in body["connectors"]] == [1, 2]
    again = client_for(operator).get(f"/api/v1/chargers/{charge_point.pk}/").json()
    assert "ocpp_password" not in again


def test_register_validation_and_permissions(operator, driver, network):
    duplicate = client_for(operator).post(
        "/api/v1/chargers/",
        {
            "site": network["berlin"].pk,
            "identity": "BER-FAST",
            "connectors": [
                {"connector_id": 1, "standard": "CHADEMO", "power_type": "DC", "max_power_kw": "50"}
            ],
        },
        format="json",
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "identity_taken"
    bad = client_for(operator).post(
        "/api/v1/chargers/", {"site": 999999, "identity": "bad id!", "connectors": []}, format="json"
    )
    assert bad.status_code == 400
    assert set(bad.json()["error"]["details"]) == {"site", "identity", "connectors"}
    forbidden = client_for(driver).post("/api/v1/chargers/", {}, format="json")
    assert forbidden.status_code == 403


def test_command_to_an_offline_charger_is_202_and_failed_with_a_reason(operator, network):
    response = client_for(operator).post(
        f"/api/v1/chargers/{network['offline'].pk}/commands/",
        {"action": "Reset", "payload": {"type": "Soft"}},
        format="json",
    )
    assert response.status_code == 202
    assert response.json()["status"] == "failed"
    assert "offline" in response.json()["error"]
    command = client_for(operator).get(f"/api/v1/commands/{response.json()['id']}/")
    assert command.json()["status"] == "failed"


def test_a_command_is_in_the_audit_log_with_who_sent_it(operator, network):
    from accounts.models import AuditEntry

    response = client_for(operator).post(
        f"/api/v1/chargers/{network['fast'].pk}/commands/", {"action": "ClearCache"}, format="json"
    )
    entry = AuditEntry.objects.get(action="command.send")
    assert entry.actor == operator
    assert entry.object_id == str(response.json()["id"])
    assert entry.after["action"] == "ClearCache"
    assert entry.source == "api"


def test_command_with_a_bad_payload_is_400_and_nothing_is_recorded(operator, network):
    response = client_for(operator).post(
        f"/api/v1/chargers/{network['fast'].pk}/commands/",
        {"action": "Reset", "payload": {"type": "Sideways"}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_command"
    assert not ChargerCommand.objects.exists()


def test_drivers_may_not_send_commands(driver, network):
    response = client_for(driver).post(
        f"/api/v1/chargers/{network['fast'].pk}/commands/", {"action": "ClearCache"}, format="json"
    )
    assert response.status_code == 403


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_driver_starts_and_stops_charging_through_the_api(ocpp_server, driver):
    charger = ChargePointFactory(identity="CP-API-1")
    connector = ConnectorFactory(charge_point=charger, connector_id=1)
    token = IdTokenFactory(uid="DANA-APP", user=driver)
    client = client_for(driver)

    def start():
        return client.post(
            "/api/v1/sessions/?wait=5", {"connector": connector.pk, "id_token": token.pk}, format="json"
        )

    def stop(session_id):
        return client.post(f"/api/v1/sessions/{session_id}/stop/?wait=5", format="json")

    async def scenario():
        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.boot()
            started = await sync_to_async(start)()
            session = await sync_to_async(lambda: wait_until(lambda: ChargingSession.objects.first()))()
            await cp.meter_tick(1, 1800)
            listed = await sync_to_async(lambda: client.get("/api/v1/sessions/").json())()
            detail = await sync_to_async(lambda: client.get(f"/api/v1/sessions/{session.pk}/").json())()
            stopped = await sync_to_async(stop)(session.pk)
            done = await sync_to_async(
                lambda: wait_until(lambda: ChargingSession.objects.filter(status="completed").first())
            )()
            return started, listed, detail, stopped, done

    started, listed, detail, stopped, done = run(scenario())
    assert started.status_code == 202
    assert started.json()["status"] == "accepted"
    assert started.json()["action"] == "RemoteStartTransaction"
    assert [row["id"] for row in listed["results"]] == [done.pk]
    assert detail["status"] == "active"
    assert detail["energy_wh"] == 11_000  # half an hour at 22 kW
    assert detail["energy_kwh"] == "11.000"
    assert stopped.status_code == 202
    assert stopped.json()["status"] == "accepted"
    assert done.stop_reason == "Remote"


def test_a_driver_cannot_start_with_someone_elses_token_or_see_their_sessions(driver, network):
    other = User.objects.create_user(email="olga@example.com", password="x")
    theirs = IdTokenFactory(uid="OLGA-1", user=other)
    connector = network["fast"].connectors.first()
    response = client_for(driver).post(
        "/api/v1/sessions/", {"connector": connector.pk, "id_token": theirs.pk}, format="json"
    )
    assert response.status_code == 400
    assert "id_token" in response.json()["error"]["details"]
    session = ChargingSession.objects.create(
        charge_point=network["fast"],
        connector=connector,
        id_tag=theirs.uid,
        id_token=theirs,
        started_at=timezone.now(),
        meter_start_wh=0,
    )
    assert client_for(driver).get(f"/api/v1/sessions/{session.pk}/").status_code == 404
    assert client_for(driver).post(f"/api/v1/sessions/{session.pk}/stop/").status_code == 404
    assert client_for(driver).get("/api/v1/sessions/").json()["results"] == []
    assert client_for(other).get(f"/api/v1/sessions/{session.pk}/").status_code == 200


def test_a_fleet_admin_sees_the_fleets_sessions(network):
    fleet = Organization.objects.create(name="Fleet GmbH", kind="fleet")
    admin = User.objects.create_user(email="fleet-admin@example.com", password="x")
    Membership.objects.create(user=admin, organization=fleet, role="admin")
    token = IdTokenFactory(uid="FLEET-7", organization=fleet)
    connector = network["fast"].connectors.first()
    session = ChargingSession.objects.create(
        charge_point=network["fast"],
        connector=connector,
        id_tag=token.uid,
        id_token=token,
        started_at=timezone.now(),
        meter_start_wh=0,
    )
    assert [row["id"] for row in client_for(admin).get("/api/v1/sessions/").json()["results"]] == [session.pk]


def test_stopping_a_finished_session_is_409(operator, network):
    connector = network["fast"].connectors.first()
    session = ChargingSession.objects.create(
        charge_point=network["fast"],
        connector=connector,
        id_tag="X",
        started_at=timezone.now(),
        meter_start_wh=0,
        status="completed",
    )
    response = client_for(operator).post(f"/api/v1/sessions/{session.pk}/stop/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_not_active"
