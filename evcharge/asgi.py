"""ASGI entry point for the `ocpp` process, and for the one-port quick start.

HTTP goes to Django; WebSocket connections go to the OCPP endpoint ``/ocpp/<identity>``.
"""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evcharge.settings")

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chargers.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)

# What is loaded by now (Django, the apps, the OCPP library) lives as long as the process: keep it
# out of the collector's full passes. A full collection over the whole heap paused the event
# loop for 60-90 ms, every charger's frames waiting behind it (bench/ocpp_bench.py).
gc.freeze()
