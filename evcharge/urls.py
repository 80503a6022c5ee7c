from django.contrib import admin
from django.urls import include, path
from django_prometheus import exports
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from evcharge.core import health

api_v1 = [
    path("", include("accounts.api.urls")),
    path("", include("chargers.api.urls")),
    path("", include("billing.api.urls")),
]

urlpatterns = [
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("metrics", exports.ExportToDjangoView, name="prometheus-metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"), namespace="v1")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler404 = "evcharge.core.errors.handler404"
handler500 = "evcharge.core.errors.handler500"
