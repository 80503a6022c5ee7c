"""Reads of the charging network that matter: the charger catalogue with live status."""

from __future__ import annotations

import math
from decimal import Decimal

from django.db.models import Exists, F, FloatField, OuterRef, Prefetch, QuerySet, Value
from django.db.models.functions import ACos, Cos, Greatest, Least, Radians, Sin

from chargers import live
from chargers.choices import ConnectorStatus
from chargers.models import ChargePoint, Connector

EARTH_RADIUS_KM = 6371.0088


def chargers_catalogue(queryset: QuerySet[ChargePoint] | None = None) -> QuerySet[ChargePoint]:
    """Chargers with their site and connectors: three queries for a whole page."""
    queryset = ChargePoint.objects.all() if queryset is None else queryset
    return queryset.select_related("site").prefetch_related(
        Prefetch("connectors", queryset=Connector.objects.order_by("connector_id"))
    )


def chargers_near(queryset: QuerySet[ChargePoint], *, lat: float, lon: float, radius_km: float) -> QuerySet:
    """Chargers whose site lies within ``radius_km`` of (lat, lon), nearest first.

    A bounding box the latitude/longitude index can use, then the great-circle distance.
    """
    lat_delta = radius_km / 111.0
    lon_delta = radius_km / max(1e-6, 111.0 * abs(math.cos(math.radians(lat))))
    box = queryset.filter(
        site__latitude__range=(Decimal(str(lat - lat_delta)), Decimal(str(lat + lat_delta))),
        site__longitude__range=(Decimal(str(lon - lon_delta)), Decimal(str(lon + lon_delta))),
    )
    lat_r, lon_r = Radians(Value(lat)), Radians(Value(lon))
    site_lat = Radians(F("site__latitude"), output_field=FloatField())
    site_lon = Radians(F("site__longitude"), output_field=FloatField())
    cosine = Sin(lat_r) * Sin(site_lat) + Cos(lat_r) * Cos(site_lat) * Cos(site_lon - lon_r)
    distance = Value(EARTH_RADIUS_KM) * ACos(Least(Value(1.0), Greatest(Value(-1.0), cosine)))
    return box.annotate(distance_km=distance).filter(distance_km__lte=radius_km).order_by("distance_km", "pk")


def chargers_available(queryset: QuerySet[ChargePoint]) -> QuerySet[ChargePoint]:
    free = Connector.objects.filter(charge_point=OuterRef("pk"), status=ConnectorStatus.AVAILABLE)
    return queryset.filter(Exists(free), is_online=True)


def live_status(charge_points: list[ChargePoint]) -> dict[int, dict]:
    """Live entries from the cache for a page of chargers (connectors prefetched), in one round trip."""
    return live.many({cp.pk: [c.connector_id for c in cp.connectors.all()] for cp in charge_points})
