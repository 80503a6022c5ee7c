"""WebSocket routes served by the ASGI (ocpp) process."""

from django.urls import re_path

from chargers.ocpp.consumer import OcppConsumer

websocket_urlpatterns = [
    re_path(r"^ocpp/(?P<identity>[A-Za-z0-9._:*+|@-]{1,48})/?$", OcppConsumer.as_asgi()),
]
