"""factory_boy factories for billing tests (and the chargers/accounts rows a session needs)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory

from accounts.models import IdToken, Organization, User
from billing import services
from billing.models import BillingAccount, Tariff
from chargers.models import ChargePoint, ChargingSession, Connector, MeterValue, Site


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Fleet {n}")
    kind = Organization.Kind.FLEET


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"driver{n}@example.com")
    password = factory.django.Password("pw-driver-1")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    name = factory.Sequence(lambda n: f"Site {n}")
    country = "DE"
    latitude = Decimal("52.5")
    longitude = Decimal("13.4")
    time_zone = "Europe/Berlin"


class ChargePointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChargePoint

    site = factory.SubFactory(SiteFactory)
    identity = factory.Sequence(lambda n: f"CP-{n:05d}")


class ConnectorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connector

    charge_point = factory.SubFactory(ChargePointFactory)
    connector_id = 1


class IdTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IdToken

    uid = factory.Sequence(lambda n: f"TAG{n:08d}")
    user = factory.SubFactory(UserFactory)


class SessionFactory(factory.django.DjangoModelFactory):
    """A completed session: 10 kWh from ``started_at`` over one hour unless told otherwise."""

    class Meta:
        model = ChargingSession

    connector = factory.SubFactory(ConnectorFactory)
    charge_point = factory.SelfAttribute("connector.charge_point")
    id_token = factory.SubFactory(IdTokenFactory)
    id_tag = factory.SelfAttribute("id_token.uid")
    status = "completed"
    started_at = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    meter_start_wh = 0
    stopped_at = factory.LazyAttribute(lambda s: s.started_at + timedelta(hours=1))
    meter_stop_wh = 10_000
    energy_wh = factory.LazyAttribute(lambda s: (s.meter_stop_wh or 0) - s.meter_start_wh)


def meter_value(session, at: datetime, wh: int) -> MeterValue:
    return MeterValue.objects.create(
        charge_point=session.charge_point,
        connector_id=session.connector.connector_id,
        session=session,
        timestamp=at,
        value=Decimal(wh),
        unit="Wh",
    )


def tariff(
    ocpi_id: str = "STD", currency: str = "EUR", energy: str = "0.30", vat: str = "19", **extra
) -> Tariff:
    data = {
        "id": ocpi_id,
        "currency": currency,
        "elements": [{"price_components": [{"type": "ENERGY", "price": energy, "vat": vat, "step_size": 1}]}],
        **extra,
    }
    return services.tariff_save_ocpi(data=data)


def default_tariff(**kwargs) -> Tariff:
    t = tariff(**kwargs)
    services.tariff_assign(tariff=t, scope="default")
    return t


def account_for_org(org: Organization, **kwargs) -> BillingAccount:
    return BillingAccount.objects.create(name=org.name, organization=org, **kwargs)
