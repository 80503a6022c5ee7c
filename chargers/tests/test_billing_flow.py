"""A session through the socket, priced by billing: live estimate, then the CDR from a worker."""

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from accounts.models import User
from billing.models import Cdr
from billing.tests.factories import default_tariff
from chargers.simulator import Behaviour, connected
from chargers.tests.conftest import run, start_server, stop_server, wait_until
from chargers.tests.factories import CHARGER_PASSWORD, ChargePointFactory, ConnectorFactory, IdTokenFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_finished_session_is_priced_by_a_worker_and_the_live_one_shows_its_cost(
    tmp_path, celery_worker_factory, channel_prefix
):
    worker = celery_worker_factory(env={"CHANNEL_LAYER_PREFIX": channel_prefix})
    # the server enqueues pricing on the default queue; point it at this test's worker
    server = start_server(
        tmp_path / "server.log", CHANNEL_LAYER_PREFIX=channel_prefix, CELERY_TASK_DEFAULT_QUEUE=worker.queue
    )
    default_tariff(energy="0.30", vat="19")  # EUR 0.30 per kWh excl. VAT, 19 % VAT
    driver = User.objects.create_user(email="dana@example.com", password="x")
    token = IdTokenFactory(uid="DANA-1", user=driver)
    charger = ChargePointFactory(identity="CP-BILL-1")
    ConnectorFactory(charge_point=charger, connector_id=1)
    client = APIClient()
    client.force_authenticate(driver)

    async def scenario():
        async with connected(server.url, charger.identity, CHARGER_PASSWORD, Behaviour(power_w=11_000)) as cp:
            start = await cp.start_transaction(1, token.uid)
            await cp.meter_tick(1, 3600)  # one hour at 11 kW: 11 kWh
            live = await sync_to_async(
                lambda: client.get(f"/api/v1/sessions/{start.transaction_id}/").json()
            )()
            await cp.stop_transaction(1)
            return start.transaction_id, live

    try:
        session_id, live = run(scenario())
    finally:
        stop_server(server)
    # 11 kWh x 0.30 = 3.30 excl. VAT; 19 % of 3.30 = 0.627 -> 0.63; incl. 3.93
    assert live["energy_kwh"] == "11.000"
    assert live["cost_estimate"]["total_excl_vat"] == {"amount": "3.30", "currency": "EUR"}
    assert live["cost_estimate"]["total_incl_vat"] == {"amount": "3.93", "currency": "EUR"}
    cdr = wait_until(lambda: Cdr.objects.filter(session_id=session_id).first(), timeout=30)
    assert cdr is not None, worker.output()
    assert cdr.total_excl_vat == Decimal("3.30")
    assert cdr.total_incl_vat == Decimal("3.93")
    assert cdr.energy_wh == 11_000
