"""The demo seed gives the network a default tariff once, and leaves an operator's own alone."""

import pytest
from django.core.management import call_command

from billing.models import Tariff, TariffAssignment
from billing.tests.factories import default_tariff

pytestmark = pytest.mark.django_db


def test_seed_demo_assigns_a_default_tariff_once():
    call_command("seed_demo")
    call_command("seed_demo")
    assignment = TariffAssignment.objects.get(scope="default")
    assert assignment.tariff.ocpi_id == "DEMO-DEFAULT"
    assert Tariff.objects.count() == 1


def test_seed_demo_keeps_an_existing_default():
    own = default_tariff(ocpi_id="OWN")
    call_command("seed_demo")
    assert TariffAssignment.objects.get(scope="default").tariff == own
