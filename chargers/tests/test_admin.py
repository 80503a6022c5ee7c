"""The back office pages for the network, through the real admin (test client)."""

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from chargers.models import ChargePoint, ChargerCommand, ChargingSession, MeterValue
from chargers.simulator import connected
from chargers.tests.conftest import run
from chargers.tests.factories import CHARGER_PASSWORD, ChargePointFactory, ConnectorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client):
    user = User.objects.create_superuser(email="ops@example.com", password="x")
    client.force_login(user)
    return client


def test_charger_list_shows_live_badges_and_filters(operator_client):
    charger = ChargePointFactory(identity="CP-ADM-1", is_online=True)
    ConnectorFactory(charge_point=charger, connector_id=1, status="Faulted")
    page = operator_client.get(reverse("admin:chargers_chargepoint_changelist"), {"online": "yes"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "CP-ADM-1" in html
    assert "1: Faulted" in html
    assert ">online<" in html
    offline_only = operator_client.get(reverse("admin:chargers_chargepoint_changelist"), {"online": "no"})
    assert "CP-ADM-1" not in offline_only.content.decode()


def test_charger_page_has_command_buttons_and_activity(operator_client):
    charger = ChargePointFactory(identity="CP-ADM-2")
    page = operator_client.get(reverse("admin:chargers_chargepoint_change", args=[charger.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Soft reset" in html
    assert reverse("admin:chargers_chargepoint_command", args=[charger.pk]) in html
    assert "OCPP message log" in html


def test_a_command_to_an_offline_charger_is_refused_cleanly(operator_client):
    charger = ChargePointFactory(identity="CP-ADM-3")
    url = reverse("admin:chargers_chargepoint_command", args=[charger.pk])
    response = operator_client.post(url, {"action": "Reset", "payload": '{"type": "Soft"}'}, follow=True)
    assert response.status_code == 200
    assert "failed" in response.content.decode()
    assert ChargerCommand.objects.get().source == "admin"
    bad = operator_client.post(url, {"action": "Reset", "payload": "{not json"}, follow=True)
    assert "Not JSON" in bad.content.decode()
    assert ChargerCommand.objects.count() == 1  # nothing recorded for the bad one


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_command_button_reaches_a_connected_charger(ocpp_server, client):
    user = User.objects.create_superuser(email="ops2@example.com", password="x")
    client.force_login(user)
    charger = ChargePointFactory(identity="CP-ADM-4")
    url = reverse("admin:chargers_chargepoint_command", args=[charger.pk])

    async def scenario():
        from asgiref.sync import sync_to_async

        async with connected(ocpp_server.url, charger.identity, CHARGER_PASSWORD) as cp:
            await cp.boot()
            response = await sync_to_async(client.post)(
                url, {"action": "ClearCache", "payload": "{}"}, follow=True
            )
            return response, cp.received

    response, received = run(scenario())
    assert "ClearCache: accepted" in response.content.decode()
    assert received == [("ClearCache", {})]


def test_session_page_draws_the_energy_chart(operator_client):
    connector = ConnectorFactory()
    session = ChargingSession.objects.create(
        charge_point=connector.charge_point,
        connector=connector,
        id_tag="T",
        started_at=timezone.now(),
        meter_start_wh=1000,
        energy_wh=2000,
    )
    for minute, value in [(1, 1500), (2, 2200), (3, 3000)]:
        MeterValue.objects.create(
            charge_point=connector.charge_point,
            connector_id=1,
            session=session,
            value=value,
            unit="Wh",
            timestamp=timezone.now() + timezone.timedelta(minutes=minute),
        )
    page = operator_client.get(reverse("admin:chargers_chargingsession_change", args=[session.pk]))
    html = page.content.decode()
    assert "<polyline" in html
    assert "2.000 kWh over 3 readings" in html


def test_pending_charger_is_approved_with_a_new_password(operator_client):
    charger = ChargePointFactory(identity="CP-PENDING", registration_status="Pending", site=None)
    response = operator_client.post(
        reverse("admin:chargers_chargepoint_changelist"),
        {"action": "approve", "_selected_action": [charger.pk]},
        follow=True,
    )
    assert "OCPP password (shown once)" in response.content.decode()
    assert ChargePoint.objects.get(pk=charger.pk).registration_status == "Accepted"


def test_message_log_is_searchable_by_charger(operator_client):
    from chargers.models import OcppMessage

    OcppMessage.objects.create(
        identity="CP-LOG-A", direction="in", message_type=2, action="Heartbeat", raw="[2]"
    )
    OcppMessage.objects.create(
        identity="CP-LOG-B", direction="in", message_type=2, action="Heartbeat", raw="[2]"
    )
    page = operator_client.get(reverse("admin:chargers_ocppmessage_changelist"), {"identity": "CP-LOG-A"})
    html = page.content.decode()
    assert "CP-LOG-A" in html
    assert "CP-LOG-B" not in html
