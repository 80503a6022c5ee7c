from drf_spectacular.utils import extend_schema
from rest_framework.generics import RetrieveAPIView

from accounts.api.serializers import MeSerializer


@extend_schema(tags=["accounts"])
class MeView(RetrieveAPIView):
    """The authenticated user."""

    serializer_class = MeSerializer

    def get_object(self):
        return self.request.user
