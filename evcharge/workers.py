"""Gunicorn worker for the `ocpp` process: uvicorn with the WebSocket settings chargers need.

- ping every 20 s, and a socket whose pong does not come within 20 s is closed, so a dead
  charger connection is noticed (and the charger marked offline) without waiting for TCP;
- no per-message compression: OCPP frames are small, and deflate cost more CPU per frame than
  the rest of the frame's handling (measured in bench/ocpp_bench.py);
- frames larger than OCPP_MAX_FRAME_BYTES are closed with 1009 by the consumer; uvicorn's own
  limit stays above it so the consumer can answer.
"""

from uvicorn_worker import UvicornWorker


class OcppUvicornWorker(UvicornWorker):
    CONFIG_KWARGS = {
        "loop": "auto",
        "http": "auto",
        "lifespan": "off",
        "ws_ping_interval": 20.0,
        "ws_ping_timeout": 20.0,
        "ws_per_message_deflate": False,
        "ws_max_size": 1024 * 1024,
    }
