import factory

from accounts.models import IdToken
from chargers.models import ChargePoint, Connector, Site
from chargers.services import charger_password_hash

CHARGER_PASSWORD = "charger-secret-for-tests"


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    name = factory.Sequence(lambda n: f"Site {n}")
    country = "DE"
    latitude = "52.520008"
    longitude = "13.404954"
    time_zone = "Europe/Berlin"


class ChargePointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChargePoint

    site = factory.SubFactory(SiteFactory)
    identity = factory.Sequence(lambda n: f"CP-{n:04d}")
    password_hash = factory.LazyFunction(lambda: charger_password_hash(CHARGER_PASSWORD))
    heartbeat_interval = 60


class ConnectorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connector

    charge_point = factory.SubFactory(ChargePointFactory)
    connector_id = 1
    max_power_kw = 50


class IdTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IdToken

    uid = factory.Sequence(lambda n: f"TAG{n:05d}")
