import django_filters
from django.db.models import Exists, OuterRef
from rest_framework.exceptions import ValidationError

from chargers import selectors
from chargers.choices import ConnectorStandard, SessionStatus
from chargers.models import ChargePoint, ChargingSession, Connector


class ChargerFilter(django_filters.FilterSet):
    """``near=<lat>,<lon>`` with ``radius_km`` (default 10), ``connector_standard``,
    ``min_power_kw``, ``available=true``, ``site``."""

    near = django_filters.CharFilter(method="filter_near", help_text="lat,lon (WGS 84)")
    radius_km = django_filters.NumberFilter(method="noop", help_text="with near; default 10, at most 500")
    connector_standard = django_filters.ChoiceFilter(
        choices=ConnectorStandard.choices, method="filter_standard"
    )
    min_power_kw = django_filters.NumberFilter(method="filter_min_power")
    available = django_filters.BooleanFilter(method="filter_available")
    site = django_filters.NumberFilter(field_name="site_id")

    class Meta:
        model = ChargePoint
        fields = ["near", "radius_km", "connector_standard", "min_power_kw", "available", "site"]

    def noop(self, queryset, name, value):
        return queryset

    def filter_near(self, queryset, name, value):
        try:
            lat, lon = (float(part) for part in value.split(","))
        except ValueError:
            raise ValidationError({"near": ["Expected '<lat>,<lon>', e.g. near=52.52,13.40."]}) from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValidationError({"near": ["Latitude must be within ±90 and longitude within ±180."]})
        radius = self.form.cleaned_data.get("radius_km")
        radius = 10.0 if radius is None else float(radius)
        if not 0 < radius <= 500:
            raise ValidationError({"radius_km": ["Must be more than 0 and at most 500."]})
        return selectors.chargers_near(queryset, lat=lat, lon=lon, radius_km=radius)

    def _with_connector(self, queryset, **conditions):
        return queryset.filter(Exists(Connector.objects.filter(charge_point=OuterRef("pk"), **conditions)))

    def filter_standard(self, queryset, name, value):
        return self._with_connector(queryset, standard=value)

    def filter_min_power(self, queryset, name, value):
        return self._with_connector(queryset, max_power_kw__gte=value)

    def filter_available(self, queryset, name, value):
        if value:
            return selectors.chargers_available(queryset)
        return queryset.exclude(pk__in=selectors.chargers_available(ChargePoint.objects.all()).values("pk"))


class SessionFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=SessionStatus.choices)
    charger = django_filters.NumberFilter(field_name="charge_point_id")
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")
    needs_review = django_filters.BooleanFilter()

    class Meta:
        model = ChargingSession
        fields = ["status", "charger", "started_after", "started_before", "needs_review"]
