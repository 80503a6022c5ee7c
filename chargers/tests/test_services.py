"""Properties of the session services, checked over many generated charger behaviours."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargers.models import ChargingSession, MeterValue
from chargers.services import meter_values_record, session_start
from chargers.tests.factories import ChargePointFactory, ConnectorFactory, IdTokenFactory

pytestmark = pytest.mark.django_db
START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    increments=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=12),
    arrival=st.randoms(use_true_random=False),
    duplicates=st.integers(min_value=0, max_value=3),
)
def test_energy_is_the_highest_register_whatever_the_arrival_order(increments, arrival, duplicates):
    # A monotonic meter, its readings delivered shuffled and partly twice (offline queue replay).
    charger = ChargePointFactory()
    ConnectorFactory(charge_point=charger, connector_id=1)
    token = IdTokenFactory()
    meter_start = 10_000
    started = session_start(
        charge_point_id=charger.pk,
        connector_id=1,
        id_tag=token.uid,
        meter_start=meter_start,
        timestamp=START.isoformat(),
    )
    readings, value = [], meter_start
    for minute, step in enumerate(increments, start=1):
        value += step
        readings.append(((START + timedelta(minutes=minute)).isoformat(), value))
    deliveries = readings + readings[:duplicates]
    arrival.shuffle(deliveries)
    energies = []
    for timestamp, register in deliveries:
        meter_values_record(
            charge_point_id=charger.pk,
            connector_id=1,
            transaction_id=started.transaction_id,
            meter_value=[{"timestamp": timestamp, "sampled_value": [{"value": str(register), "unit": "Wh"}]}],
        )
        energies.append(ChargingSession.objects.get(pk=started.transaction_id).energy_wh)
    session = ChargingSession.objects.get(pk=started.transaction_id)
    assert energies == sorted(energies)  # never goes down
    assert session.energy_wh == value - meter_start
    assert not session.needs_review  # a monotonic meter is never flagged, however it arrives
    assert MeterValue.objects.filter(session=session).count() == len(readings)  # duplicates stored once
