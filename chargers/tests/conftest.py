"""A real OCPP server for the tests: uvicorn running our ASGI app in its own process, on the
test database and the real Redis (cache, channel layer), reached over a real WebSocket."""

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import subprocess_env
from evcharge.core.devserver import asgi_start, process_stop


@dataclass
class OcppServer:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(log: Path, **env: str) -> OcppServer:
    handle = log.open("w")
    process, port = asgi_start(
        env=subprocess_env(
            LOG_FORMAT="text",
            OCPP_LOG_FLUSH_MS="100",
            OCPP_CALL_TIMEOUT_SECONDS="3",
            SECURE_SSL_REDIRECT="0",
            **env,
        ),
        options=["--ws-ping-interval", "5", "--ws-ping-timeout", "5"],
        stdout=handle,
        output=lambda: log.read_text(errors="replace"),
    )
    return OcppServer(port, process, log)


def stop_server(server: OcppServer) -> None:
    process_stop(server.process)


@pytest.fixture(scope="session")
def channel_prefix() -> str:
    return f"evtest-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def ocpp_server(django_db_setup, django_db_blocker, tmp_path_factory, channel_prefix) -> Iterator[OcppServer]:
    with django_db_blocker.unblock():
        server = start_server(
            tmp_path_factory.mktemp("ocpp") / "server.log", CHANNEL_LAYER_PREFIX=channel_prefix
        )
    yield server
    stop_server(server)


@pytest.fixture
def second_ocpp_server(django_db_setup, django_db_blocker, tmp_path, channel_prefix) -> Iterator[OcppServer]:
    with django_db_blocker.unblock():
        server = start_server(tmp_path / "server2.log", CHANNEL_LAYER_PREFIX=channel_prefix)
    yield server
    stop_server(server)


@pytest.fixture(autouse=True)
def _same_channel_layer(settings, channel_prefix):
    """Commands sent from the test process reach the servers' consumers."""
    layer = dict(settings.CHANNEL_LAYERS["default"])
    layer["CONFIG"] = {**layer["CONFIG"], "prefix": channel_prefix}
    settings.CHANNEL_LAYERS = {"default": layer}
    from channels.layers import channel_layers

    channel_layers.backends.clear()


def run(coro):
    """Run a charger scenario from a (sync) test."""
    return asyncio.run(coro)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@pytest.fixture(autouse=True)
def _server_settles(request):
    """After a test that talked to a server, let the server finish with the sockets the test
    closed (disconnect handling, the message-log flush) before the database is truncated."""
    uses_server = "ocpp_server" in request.fixturenames
    if uses_server:
        request.getfixturevalue("_django_db_helper")  # set up first, so torn down after this
    yield
    if not uses_server:
        return
    from chargers.models import ChargePoint

    wait_until(lambda: not ChargePoint.objects.filter(is_online=True).exists(), timeout=5)
    time.sleep(0.3)
