"""Our ASGI app under uvicorn in a child process, on a free loopback port: for the tests and the
benchmarks, which talk to it over real sockets. (``make run`` and production start their own
servers: ``runplatform`` and the container commands.)
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_wait(
    port: int, process: subprocess.Popen, *, output: Callable[[], str] = str, timeout: float = 30
) -> None:
    """Return once ``port`` accepts connections; raise (with ``output()``) if the process exits
    first or nothing listens within ``timeout`` seconds (the process is then killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{output()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not listen on {port} within {timeout} s:\n{output()}")


def asgi_start(
    *,
    env: dict[str, str],
    options: Sequence[str] = (),
    stdout: IO | None = None,
    output: Callable[[], str] = str,
) -> tuple[subprocess.Popen, int]:
    """Start ``evcharge.asgi:application`` under uvicorn on a free port; return (process, port)
    once it listens. ``options`` are extra uvicorn options; ``stdout`` receives its output (and
    stderr), ``output()`` reads it back for the error when it fails to start."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "evcharge.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--lifespan",
            "off",
            "--ws-per-message-deflate",
            "false",
            *options,
        ],
        cwd=ROOT,
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        env=env,
    )
    port_wait(port, process, output=output)
    return process, port


def process_stop(process: subprocess.Popen, *, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
