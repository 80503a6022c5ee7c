from django.urls import path
from rest_framework.routers import SimpleRouter

from accounts.api.views import (
    ApiKeyViewSet,
    IdTokenViewSet,
    MembershipViewSet,
    MeView,
    OrganizationViewSet,
    TokenRefresh,
    TokenView,
)

router = SimpleRouter()
router.register("organizations", OrganizationViewSet, basename="organization")
router.register(r"organizations/(?P<organization_pk>\d+)/members", MembershipViewSet, basename="membership")
router.register("id-tokens", IdTokenViewSet, basename="id-token")
router.register("api-keys", ApiKeyViewSet, basename="api-key")

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    path("auth/token/refresh/", TokenRefresh.as_view(), name="auth-token-refresh"),
    path("me/", MeView.as_view(), name="me"),
    *router.urls,
]
