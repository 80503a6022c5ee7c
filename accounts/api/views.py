"""Accounts API: the caller, organizations and members, ID tokens, API keys, JWT login.

Every queryset view inherits ``ScopedQuerysetMixin``: what a caller may not see answers 404.
Writes go through ``accounts.services``.
"""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.generics import RetrieveAPIView, get_object_or_404
from rest_framework.response import Response
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from accounts import lockout, services
from accounts.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeySerializer,
    IdTokenCreateSerializer,
    IdTokenSerializer,
    MembershipCreateSerializer,
    MembershipSerializer,
    MembershipUpdateSerializer,
    MeSerializer,
    OrganizationSerializer,
)
from accounts.models import ApiKey, IdToken, Membership, Organization
from accounts.permissions import ApiKeyScopePermission, IsPerson
from accounts.scoping import ScopedQuerysetMixin, actor_for_request, scope_queryset


@extend_schema(tags=["accounts"])
class TokenView(TokenObtainPairView):
    """JWT login with e-mail and password; repeated failures lock the e-mail out for this address."""

    throttle_scope = "auth"

    def post(self, request, *args, **kwargs):
        try:
            return super().post(request, *args, **kwargs)
        except AuthenticationFailed:
            # django-axes marks the request it was handed (DRF's) when the login is locked out.
            if getattr(request, "axes_locked_out", False):
                return lockout.lockout_response(request)
            raise


@extend_schema(tags=["accounts"])
class TokenRefresh(TokenRefreshView):
    throttle_scope = "auth"


@extend_schema(tags=["accounts"])
class MeView(RetrieveAPIView):
    """The authenticated person, with their organizations and roles."""

    serializer_class = MeSerializer
    permission_classes = [IsPerson, ApiKeyScopePermission]

    def get_object(self):
        return self.request.user

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "actor": actor_for_request(self.request)}

    def retrieve(self, request, *args, **kwargs):
        user = (
            type(request.user)
            .objects.prefetch_related(
                Prefetch("memberships", queryset=Membership.objects.select_related("organization"))
            )
            .get(pk=request.user.pk)
        )
        return Response(self.get_serializer(user).data)


@extend_schema(tags=["accounts"])
class OrganizationViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    """Organizations the caller belongs to (operators: all)."""

    queryset = Organization.objects.all()
    serializer_class = OrganizationSerializer
    api_area = "accounts"
    filterset_fields = ["kind"]
    ordering_fields = ["name", "created_at"]


@extend_schema(tags=["accounts"])
class MembershipViewSet(
    ScopedQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Members of one organization: its owners and admins see and manage all; others see themselves."""

    queryset = Membership.objects.select_related("user").order_by("pk")
    serializer_class = MembershipSerializer
    api_area = "accounts"
    filterset_fields = ["role"]

    def organization(self) -> Organization:
        return get_object_or_404(
            scope_queryset(Organization.objects.all(), self.actor), pk=self.kwargs["organization_pk"]
        )

    def get_queryset(self):
        # An organization the caller does not see has no members list either: 404.
        return super().get_queryset().filter(organization=self.organization())

    @extend_schema(request=MembershipCreateSerializer, responses={201: MembershipSerializer})
    def create(self, request, organization_pk=None):
        organization = self.organization()
        data = MembershipCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_add(
            actor=self.actor, organization=organization, **data.validated_data
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MembershipUpdateSerializer, responses={200: MembershipSerializer})
    def partial_update(self, request, organization_pk=None, pk=None):
        membership = self.get_object()
        data = MembershipUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            actor=self.actor, membership=membership, role=data.validated_data["role"]
        )
        return Response(MembershipSerializer(membership).data)

    def perform_destroy(self, instance):
        services.membership_remove(actor=self.actor, membership=instance)


@extend_schema(tags=["id-tokens"])
class IdTokenViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    """RFID cards and app tokens. Drivers see and block their own; organization admins issue,
    block and unblock their organization's; operators all."""

    queryset = IdToken.objects.all()
    serializer_class = IdTokenSerializer
    api_area = "accounts"
    filterset_fields = ["status", "type", "organization", "user"]
    ordering_fields = ["uid", "created_at"]

    @extend_schema(request=IdTokenCreateSerializer, responses={201: IdTokenSerializer})
    def create(self, request):
        data = IdTokenCreateSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        token = services.id_token_issue(actor=self.actor, **data.validated_data)
        return Response(IdTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: IdTokenSerializer})
    @action(detail=True, methods=["post"])
    def block(self, request, pk=None):
        token = services.id_token_block(actor=self.actor, id_token=self.get_object())
        return Response(IdTokenSerializer(token).data)

    @extend_schema(request=None, responses={200: IdTokenSerializer})
    @action(detail=True, methods=["post"])
    def unblock(self, request, pk=None):
        token = services.id_token_unblock(actor=self.actor, id_token=self.get_object())
        return Response(IdTokenSerializer(token).data)


@extend_schema(tags=["api-keys"])
class ApiKeyViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    """API keys of the caller's organizations, for their owners and admins (operators: all).
    Managed by people only: an API key cannot see or make keys."""

    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    permission_classes = [IsPerson, ApiKeyScopePermission]
    filterset_fields = ["organization"]

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def create(self, request):
        data = ApiKeyCreateSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        api_key, key = services.api_key_create(actor=self.actor, **data.validated_data)
        api_key.key = key
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        api_key = services.api_key_revoke(actor=self.actor, api_key=self.get_object())
        return Response(ApiKeySerializer(api_key).data)
