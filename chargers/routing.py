"""WebSocket routes served by the ASGI (ocpp) process."""

websocket_urlpatterns: list = []
