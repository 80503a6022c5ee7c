"""Demo network for ``make run``: two sites, four chargers the simulator drives, ID tokens.

Idempotent. The chargers' OCPP password is made once per checkout and kept in ``VAR_DIR``
(never in code), so ``simulate_chargers --demo`` can read it.
"""

from __future__ import annotations

import secrets

from django.conf import settings

from accounts.models import IdToken, Membership, Organization, User
from chargers.models import ChargePoint, Connector, Site
from chargers.services import charger_password_check, charger_password_hash

DEMO_PREFIX = "DEMO-"
DEMO_CHARGERS = 4
DEMO_TAGS = [f"DEMO-RFID-{n}" for n in range(1, 9)]
SITES = [
    ("Berlin Hauptbahnhof", "Europaplatz 1", "Berlin", "10557", "52.525084", "13.369402"),
    ("Hamburg HafenCity", "Am Sandtorkai 1", "Hamburg", "20457", "53.541553", "9.984158"),
]


def demo_charger_password() -> str:
    path = settings.VAR_DIR / "demo_charger_password"
    if not path.exists():
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(18))
        path.chmod(0o600)
    return path.read_text().strip()


def seed(*, operator: User) -> None:
    cpo, _ = Organization.objects.get_or_create(name="evcharge Demo CPO", defaults={"kind": "operator"})
    Membership.objects.get_or_create(user=operator, organization=cpo, defaults={"role": "owner"})
    driver, created = User.objects.get_or_create(
        email="driver@evcharge.local", defaults={"full_name": "Demo Driver"}
    )
    if created:
        driver.set_unusable_password()
        driver.save(update_fields=["password"])
    password = demo_charger_password()
    sites = []
    for name, address, city, postal, lat, lon in SITES:
        site, _ = Site.objects.get_or_create(
            name=name,
            defaults={
                "operator": cpo,
                "address": address,
                "city": city,
                "postal_code": postal,
                "country": "DE",
                "latitude": lat,
                "longitude": lon,
                "time_zone": "Europe/Berlin",
                "opening_hours": {"twentyfourseven": True},
            },
        )
        sites.append(site)
    for n in range(1, DEMO_CHARGERS + 1):
        charge_point, _ = ChargePoint.objects.get_or_create(
            identity=f"{DEMO_PREFIX}{n:04d}",
            defaults={
                "site": sites[n % len(sites)],
                "vendor": "evcharge",
                "model": "Sim-1",
                "heartbeat_interval": 60,
            },
        )
        if not charge_point.password_hash or not charger_password_check(password, charge_point.password_hash):
            charge_point.password_hash = charger_password_hash(password)
            charge_point.save(update_fields=["password_hash"])
        dc = n % 2 == 1
        for connector_id in (1, 2):
            Connector.objects.get_or_create(
                charge_point=charge_point,
                connector_id=connector_id,
                defaults={
                    "standard": ("IEC_62196_T2_COMBO" if connector_id == 1 else "CHADEMO")
                    if dc
                    else "IEC_62196_T2",
                    "power_type": "DC" if dc else "AC_3_PHASE",
                    "max_power_kw": 150 if dc else 22,
                },
            )
    for uid in DEMO_TAGS:
        IdToken.objects.get_or_create(uid=uid, defaults={"user": driver, "label": "demo card"})
