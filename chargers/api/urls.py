from rest_framework.routers import SimpleRouter

from chargers.api.views import ChargerViewSet, CommandViewSet, SessionViewSet

router = SimpleRouter()
router.register("chargers", ChargerViewSet, basename="charger")
router.register("commands", CommandViewSet, basename="command")
router.register("sessions", SessionViewSet, basename="session")

urlpatterns = router.urls
