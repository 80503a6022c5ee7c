"""Chargers, commands and sessions. Catalogue reads are viewsets; actions with side effects
(registering a charger, sending a command, starting and stopping a session) are explicit
endpoints with their own input and output serializers, calling services."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import READ_OR_OPERATOR
from accounts.scoping import ScopedQuerysetMixin
from chargers import selectors
from chargers.api.filters import ChargerFilter, SessionFilter
from chargers.api.serializers import (
    ChargerRegisteredSerializer,
    ChargerRegisterSerializer,
    ChargerSerializer,
    CommandInputSerializer,
    CommandSerializer,
    SessionSerializer,
    SessionStartSerializer,
)
from chargers.choices import CommandAction, CommandSource, SessionStatus
from chargers.commands import command_send, command_wait
from chargers.models import ChargePoint, ChargerCommand, ChargingSession
from chargers.services import charger_register
from evcharge.core.errors import Conflict, DomainError

WAIT_PARAMETER = OpenApiParameter(
    "wait", OpenApiTypes.FLOAT, description="seconds to wait for the charger's answer (at most 30)"
)


def _wait_seconds(request) -> float:
    try:
        return max(0.0, float(request.query_params.get("wait", 0)))
    except ValueError:
        raise DomainError("wait must be a number of seconds", code="invalid_wait") from None


@extend_schema(tags=["chargers"])
class ChargerViewSet(ScopedQuerysetMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """The charger catalogue with live status; operators register chargers and send commands."""

    queryset = ChargePoint.objects.all()
    serializer_class = ChargerSerializer
    filterset_class = ChargerFilter
    ordering_fields = ["identity", "last_seen_at", "created_at"]
    ordering = ["identity"]
    permission_classes = READ_OR_OPERATOR
    api_area = "chargers"

    def get_queryset(self):
        return selectors.chargers_catalogue(super().get_queryset())

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["live"] = getattr(self, "_live", {})
        return context

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self._live = selectors.live_status(page if page is not None else list(queryset))
        return page

    def retrieve(self, request, *args, **kwargs):
        charge_point = self.get_object()
        self._live = selectors.live_status([charge_point])
        return Response(self.get_serializer(charge_point).data)

    @extend_schema(request=ChargerRegisterSerializer, responses={201: ChargerRegisteredSerializer})
    def create(self, request, *args, **kwargs):
        """Register a charger; the answer carries its OCPP password, shown this once."""
        form = ChargerRegisterSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        charge_point, password = charger_register(
            site=data["site"],
            identity=data["identity"],
            connectors=data["connectors"],
            vendor=data["vendor"],
            model=data["model"],
            heartbeat_interval=data["heartbeat_interval"],
        )
        charge_point = selectors.chargers_catalogue().get(pk=charge_point.pk)
        charge_point.ocpp_password = password
        return Response(ChargerRegisteredSerializer(charge_point).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=CommandInputSerializer, responses={202: CommandSerializer}, parameters=[WAIT_PARAMETER]
    )
    @action(detail=True, methods=["post"], url_path="commands")
    def commands(self, request, pk=None):
        """Send an OCPP command: 202 with the command record; ``?wait=5`` waits for the outcome."""
        charge_point = self.get_object()
        form = CommandInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        command = command_send(
            charge_point=charge_point,
            action=form.validated_data["action"],
            payload=form.validated_data["payload"],
            source=CommandSource.API,
            requested_by=request.user if request.user.is_authenticated else None,
        )
        command = command_wait(command=command, seconds=_wait_seconds(request))
        return Response(CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["chargers"], parameters=[WAIT_PARAMETER])
class CommandViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    """Commands and their outcome; ``GET /commands/<id>/?wait=5`` waits for a final state."""

    queryset = ChargerCommand.objects.all()
    serializer_class = CommandSerializer
    filterset_fields = ["status", "action", "charge_point"]
    ordering = ["-created_at"]
    api_area = "chargers"

    def retrieve(self, request, *args, **kwargs):
        command = command_wait(command=self.get_object(), seconds=_wait_seconds(request))
        return Response(self.get_serializer(command).data)


@extend_schema(tags=["sessions"])
class SessionViewSet(ScopedQuerysetMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Charging sessions with energy so far and, while live, a running cost estimate."""

    queryset = ChargingSession.objects.select_related("charge_point", "connector")
    serializer_class = SessionSerializer
    filterset_class = SessionFilter
    ordering_fields = ["started_at", "stopped_at", "energy_wh"]
    ordering = ["-started_at"]
    api_area = "sessions"

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["with_estimate"] = self.action == "retrieve"
        return context

    @extend_schema(request=SessionStartSerializer, responses={202: CommandSerializer})
    def create(self, request, *args, **kwargs):
        """Start charging remotely: a RemoteStartTransaction to the charger (202 with the command).

        The session appears in ``GET /sessions/`` when the charger starts it.
        """
        form = SessionStartSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        connector, token = form.validated_data["connector"], form.validated_data["id_token"]
        command = command_send(
            charge_point=connector.charge_point,
            action=CommandAction.REMOTE_START,
            payload={"idTag": token.uid, "connectorId": connector.connector_id},
            source=CommandSource.API,
            requested_by=request.user if request.user.is_authenticated else None,
        )
        command = command_wait(command=command, seconds=_wait_seconds(request))
        return Response(CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: CommandSerializer}, parameters=[WAIT_PARAMETER])
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Stop a running session: a RemoteStopTransaction to its charger (202 with the command)."""
        session = self.get_object()
        if session.status != SessionStatus.ACTIVE:
            raise Conflict("The session is not running.", code="session_not_active")
        command = command_send(
            charge_point=session.charge_point,
            action=CommandAction.REMOTE_STOP,
            payload={"transactionId": session.pk},
            source=CommandSource.API,
            requested_by=request.user if request.user.is_authenticated else None,
        )
        command = command_wait(command=command, seconds=_wait_seconds(request))
        return Response(CommandSerializer(command).data, status=status.HTTP_202_ACCEPTED)
