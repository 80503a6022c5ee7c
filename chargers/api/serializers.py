from decimal import Decimal

from rest_framework import serializers

from accounts.models import IdToken
from accounts.scoping import ScopedPrimaryKeyRelatedField
from chargers.choices import CommandAction, ConnectorStandard, PowerType
from chargers.models import ChargePoint, ChargerCommand, ChargingSession, Connector, Site


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = [
            "id",
            "name",
            "address",
            "city",
            "postal_code",
            "country",
            "latitude",
            "longitude",
            "time_zone",
            "opening_hours",
        ]


class ConnectorSerializer(serializers.ModelSerializer):
    """A connector with its live status (the cache when it has one, else the database)."""

    status = serializers.SerializerMethodField()
    error_code = serializers.SerializerMethodField()
    status_at = serializers.SerializerMethodField()

    class Meta:
        model = Connector
        fields = [
            "id",
            "connector_id",
            "standard",
            "power_type",
            "max_power_kw",
            "status",
            "error_code",
            "status_at",
        ]

    def _live(self, connector: Connector) -> dict:
        entry = self.context.get("live", {}).get(connector.charge_point_id, {})
        return entry.get("connectors", {}).get(str(connector.connector_id), {})

    def get_status(self, connector: Connector) -> str:
        return self._live(connector).get("status", connector.status)

    def get_error_code(self, connector: Connector) -> str:
        return self._live(connector).get("error_code", connector.error_code)

    def get_status_at(self, connector: Connector) -> str | None:
        at = self._live(connector).get("at")
        if at:
            return at.replace("+00:00", "Z")
        return (
            serializers.DateTimeField().to_representation(connector.status_at)
            if connector.status_at
            else None
        )


class ChargerSerializer(serializers.ModelSerializer):
    site = SiteSerializer(read_only=True)
    connectors = ConnectorSerializer(many=True, read_only=True)
    online = serializers.SerializerMethodField()
    distance_km = serializers.SerializerMethodField()

    class Meta:
        model = ChargePoint
        fields = [
            "id",
            "identity",
            "site",
            "vendor",
            "model",
            "firmware_version",
            "protocol",
            "registration_status",
            "online",
            "last_seen_at",
            "status",
            "error_code",
            "connectors",
            "distance_km",
        ]
        read_only_fields = fields

    def get_online(self, charge_point: ChargePoint) -> bool:
        entry = self.context.get("live", {}).get(charge_point.pk)
        return entry["online"] if entry and "online" in entry else charge_point.is_online

    def get_distance_km(self, charge_point: ChargePoint) -> float | None:
        distance = getattr(charge_point, "distance_km", None)
        return round(distance, 3) if distance is not None else None


class ConnectorInputSerializer(serializers.Serializer):
    connector_id = serializers.IntegerField(min_value=1, max_value=99)
    standard = serializers.ChoiceField(choices=ConnectorStandard.choices)
    power_type = serializers.ChoiceField(choices=PowerType.choices)
    max_power_kw = serializers.DecimalField(max_digits=7, decimal_places=2, min_value=0)


class ChargerRegisterSerializer(serializers.Serializer):
    site = serializers.PrimaryKeyRelatedField(queryset=Site.objects.all())
    identity = serializers.RegexField(r"^[A-Za-z0-9._:*+|@-]{1,48}$", max_length=48)
    vendor = serializers.CharField(max_length=20, required=False, default="")
    model = serializers.CharField(max_length=20, required=False, default="")
    heartbeat_interval = serializers.IntegerField(min_value=10, max_value=86400, default=300)
    connectors = ConnectorInputSerializer(many=True, allow_empty=False)

    def validate_connectors(self, value):
        ids = [c["connector_id"] for c in value]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("connector_id values must be unique.")
        return value


class ChargerRegisteredSerializer(ChargerSerializer):
    ocpp_password = serializers.CharField(read_only=True, help_text="Shown once; only a hash is kept.")

    class Meta(ChargerSerializer.Meta):
        fields = [*ChargerSerializer.Meta.fields, "ocpp_password"]
        read_only_fields = fields


class CommandInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=CommandAction.choices)
    payload = serializers.DictField(required=False, default=dict, help_text="OCPP 1.6 payload, camelCase")


class CommandSerializer(serializers.ModelSerializer):
    charger = serializers.IntegerField(source="charge_point_id", read_only=True)

    class Meta:
        model = ChargerCommand
        fields = [
            "id",
            "charger",
            "action",
            "payload",
            "status",
            "response",
            "error",
            "source",
            "created_at",
            "sent_at",
            "completed_at",
        ]
        read_only_fields = fields


class SessionSerializer(serializers.ModelSerializer):
    charger = serializers.CharField(source="charge_point.identity", read_only=True)
    connector_id = serializers.IntegerField(source="connector.connector_id", read_only=True)
    energy_kwh = serializers.SerializerMethodField()
    cost_estimate = serializers.SerializerMethodField()

    class Meta:
        model = ChargingSession
        fields = [
            "id",
            "charger",
            "connector_id",
            "id_tag",
            "status",
            "start_status",
            "started_at",
            "stopped_at",
            "meter_start_wh",
            "meter_stop_wh",
            "energy_wh",
            "energy_kwh",
            "stop_reason",
            "last_meter_at",
            "needs_review",
            "review_reasons",
            "cost_estimate",
        ]
        read_only_fields = fields

    def get_energy_kwh(self, session: ChargingSession) -> str:
        return str((Decimal(session.energy_wh) / 1000).quantize(Decimal("0.001")))

    def get_cost_estimate(self, session: ChargingSession) -> dict | None:
        """A live session's running cost, priced like its CDR will be (billing)."""
        if session.status != "active" or not self.context.get("with_estimate"):
            return None
        from billing.services import session_cost_estimate

        estimate = session_cost_estimate(session=session)
        if estimate is None:
            return None
        return {
            "tariff_id": estimate["tariff_id"],
            "energy_kwh": estimate["energy_kwh"],
            "total_excl_vat": estimate["total_excl_vat"].as_api(),
            "total_incl_vat": estimate["total_incl_vat"].as_api(),
        }


class SessionStartSerializer(serializers.Serializer):
    connector = ScopedPrimaryKeyRelatedField(queryset=Connector.objects.select_related("charge_point"))
    id_token = ScopedPrimaryKeyRelatedField(queryset=IdToken.objects.all(), help_text="one of your ID tokens")
