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


def test_one_message_with_new_and_older_readings_is_judged_against_the_stored_ones():
    # The usual in-order message takes one statement; a message that also carries a reading
    # older than the newest (an offline queue) is checked against what is stored, its own
    # readings included.
    charger = ChargePointFactory()
    ConnectorFactory(charge_point=charger, connector_id=1)
    started = session_start(
        charge_point_id=charger.pk,
        connector_id=1,
        id_tag=IdTokenFactory().uid,
        meter_start=1000,
        timestamp=START.isoformat(),
    )

    def send(*readings):
        meter_values_record(
            charge_point_id=charger.pk,
            connector_id=1,
            transaction_id=started.transaction_id,
            meter_value=[
                {
                    "timestamp": (START + timedelta(minutes=minute)).isoformat(),
                    "sampled_value": [
                        {"value": value, "unit": unit},
                        {"value": "7.5", "measurand": "Power.Active.Import", "unit": "kW"},
                    ],
                }
                for minute, value, unit in readings
            ],
        )
        return ChargingSession.objects.get(pk=started.transaction_id)

    session = send((10, "1.5", "kWh"), (20, "2000", "Wh"))
    assert (session.energy_wh, session.last_meter_at, session.needs_review) == (
        1000,
        START + timedelta(minutes=20),
        False,
    )
    session = send((30, "2500", "Wh"), (15, "1800", "Wh"), (20, "2000", "Wh"))  # 15 fits, 20 is a repeat
    assert (session.energy_wh, session.last_meter_at, session.needs_review) == (
        1500,
        START + timedelta(minutes=30),
        False,
    )
    session = send((40, "2600", "Wh"), (25, "2700", "Wh"))  # 25 is above 30's reading: backwards
    assert (session.energy_wh, session.needs_review) == (1700, True)
    assert session.review_reasons == ["energy register went backwards (meter reset or clock skew)"]
    stored = MeterValue.objects.filter(session=session)
    assert stored.filter(measurand="Energy.Active.Import.Register").count() == 6
    assert set(stored.filter(measurand="Power.Active.Import").values_list("value", "unit")) == {(7500, "W")}
    assert stored.filter(measurand="Power.Active.Import").count() == 6
