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

# Garbage collection for a process that holds thousands of long-lived sockets (bench/ocpp_bench.py).
# What is loaded by now (Django, the apps, the OCPP library) lives as long as the process: frozen,
# no collection walks it again. A full collection walks every live object and stops the event
# loop (0.3-0.8 s with 5,000 sockets); with the default thresholds 5,000 chargers connecting
# set off ~18 of them. Young generations are collected as usual; a full pass comes after 1,000
# of their collections instead of 10. The price: cyclic garbage that reached the old generation
# (uvicorn's HTTP protocol object of each handshake, ~5 KiB) waits longer for that pass.
gc.freeze()
gc.set_threshold(*gc.get_threshold()[:2], 1000)
