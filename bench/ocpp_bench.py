"""OCPP endpoint: heartbeat round trips against a bare echo server, MeterValues with
persistence, and thousands of simultaneous chargers — all in one run.

The server is our ASGI app under uvicorn (one process, as one ``ocpp`` container runs it) on a
database of its own (``<DATABASE name>_ocpp_bench``, created and dropped here), with the real
Redis. The client is one asyncio process speaking raw OCPP-J frames over ``websockets``; the
baseline is a bare ``websockets`` echo server driven by the very same client code.

Tables:
1. Heartbeat round trips per second (C connections, each sending its next frame when the
   answer arrives): ours vs echo, ratio (target >= 0.3), p50/p99 (target p99 < 20 ms).
2. MeterValues with persistence: messages/s, p50/p99, rows expected vs stored (target: 0 lost).
3. N simultaneous connections (default 5,000) each sending heartbeats: server memory per
   connection (RSS growth / N) and heartbeat p99 with all of them connected.

Sizes: BENCH_OCPP_CONNECTIONS (20), BENCH_OCPP_SECONDS (5 per heartbeat run),
BENCH_OCPP_METER_MESSAGES (2,000), BENCH_OCPP_MANY (5,000).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import websockets
from django.db import connection

from evcharge.core.devserver import asgi_start, free_port, port_wait, process_stop

CONNECTIONS = int(os.environ.get("BENCH_OCPP_CONNECTIONS", "20"))
SECONDS = float(os.environ.get("BENCH_OCPP_SECONDS", "5"))
METER_MESSAGES = int(os.environ.get("BENCH_OCPP_METER_MESSAGES", "2000"))
MANY = int(os.environ.get("BENCH_OCPP_MANY", "5000"))
METER_CHARGERS = int(os.environ.get("BENCH_OCPP_METER_CHARGERS", "10"))
METER_IDENTITIES = [f"BENCH-M{n:04d}" for n in range(METER_CHARGERS)]
PASSWORD = "bench-charger-password"  # noqa: S105 (a throwaway bench database)


def _pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _headers(identity: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{identity}:{PASSWORD}".encode()).decode()}


# --- servers -------------------------------------------------------------------------------


def _start_ours(database_url: str) -> tuple[subprocess.Popen, int]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "SECURE_SSL_REDIRECT": "0",
        "OCPP_LOG_FLUSH_MS": "500",
        "CHANNEL_LAYER_PREFIX": f"bench-{uuid.uuid4().hex[:6]}",
    }
    options = ["--no-access-log", "--log-level", "warning", "--backlog", "8192"]
    return asgi_start(env=env, options=[*options, "--ws-ping-interval", "60", "--ws-ping-timeout", "60"])


def _start_echo() -> tuple[subprocess.Popen, int]:
    port = free_port()
    code = (
        "import asyncio, websockets\n"
        "async def echo(ws):\n"
        "    async for m in ws:\n"
        "        await ws.send(m)\n"
        "async def main():\n"
        f"    async with websockets.serve(echo, '127.0.0.1', {port}, subprotocols=['ocpp1.6']):\n"
        "        await asyncio.Future()\n"
        "asyncio.run(main())\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    port_wait(port, process)
    return process, port


# --- client --------------------------------------------------------------------------------


async def _connect(url: str, identity: str):
    return await websockets.connect(
        f"{url}/{identity}",
        subprotocols=["ocpp1.6"],
        additional_headers=_headers(identity),
        open_timeout=120,
        ping_interval=None,
        max_queue=None,
    )


async def _round_trips(ws, frames, until: float, latencies: list[float]) -> int:
    """Send a frame, wait for its answer, repeat until ``until``; returns the count."""
    count = 0
    while time.perf_counter() < until:
        frame = frames(count)
        started = time.perf_counter()
        await ws.send(frame)
        await ws.recv()
        latencies.append((time.perf_counter() - started) * 1000)
        count += 1
    return count


def _heartbeat(_n: int) -> str:
    return json.dumps([2, uuid.uuid4().hex, "Heartbeat", {}])


async def _heartbeat_run(url: str, identities: list[str]) -> tuple[float, list[float]]:
    sockets = [await _connect(url, identity) for identity in identities]
    latencies: list[float] = []
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(_round_trips(ws, _heartbeat, started + SECONDS, latencies) for ws in sockets)
    )
    elapsed = time.perf_counter() - started
    for ws in sockets:
        await ws.close()
    return sum(counts) / elapsed, latencies


async def _meter_charger(
    url: str, identity: str, transaction_id: int, count: int, latencies: list[float]
) -> None:
    ws = await _connect(url, identity)
    base = 1_700_000_000
    for n in range(count):
        timestamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + n))
        frame = json.dumps(
            [
                2,
                uuid.uuid4().hex,
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": transaction_id,
                    "meterValue": [
                        {
                            "timestamp": timestamp,
                            "sampledValue": [
                                {
                                    "value": str(1000 + n * 10),
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                },
                                {"value": "22000", "measurand": "Power.Active.Import", "unit": "W"},
                            ],
                        }
                    ],
                },
            ]
        )
        t0 = time.perf_counter()
        await ws.send(frame)
        answer = json.loads(await ws.recv())
        if answer[0] != 3:
            raise RuntimeError(f"MeterValues refused: {answer}")
        latencies.append((time.perf_counter() - t0) * 1000)
    await ws.close()


async def _meter_run(url: str, sessions: dict[str, int]) -> tuple[float, list[float]]:
    """Each charger sends its share of METER_MESSAGES, one after the other; chargers in parallel."""
    latencies: list[float] = []
    share = METER_MESSAGES // len(sessions)
    started = time.perf_counter()
    await asyncio.gather(*(_meter_charger(url, i, tx, share, latencies) for i, tx in sessions.items()))
    return len(latencies) / (time.perf_counter() - started), latencies


async def _many_run(url: str, identities: list[str], server_pid: int) -> dict:
    before = _rss_kib(server_pid)
    sockets = []
    connect_started = time.perf_counter()
    for chunk in range(0, len(identities), 200):
        sockets += await asyncio.gather(*(_connect(url, i) for i in identities[chunk : chunk + 200]))
    connect_seconds = time.perf_counter() - connect_started
    await asyncio.sleep(2)
    after = _rss_kib(server_pid)
    latencies: list[float] = []

    async def beat(ws) -> None:
        t0 = time.perf_counter()
        await ws.send(_heartbeat(0))
        await ws.recv()
        latencies.append((time.perf_counter() - t0) * 1000)

    # every charger sends a heartbeat, spread over 5 seconds (real chargers do not beat in lockstep)
    started = time.perf_counter()
    spread = 5.0 / len(sockets)
    tasks = []
    for n, ws in enumerate(sockets):
        tasks.append(asyncio.create_task(beat(ws)))
        if n % 50 == 49:
            await asyncio.sleep(spread * 50)
    await asyncio.gather(*tasks)
    beat_seconds = time.perf_counter() - started
    for chunk in range(0, len(sockets), 500):
        await asyncio.gather(*(ws.close() for ws in sockets[chunk : chunk + 500]))
    return {
        "connected": len(sockets),
        "connect_s": connect_seconds,
        "rss_growth_kib": after - before,
        "beats": len(latencies),
        "beat_s": beat_seconds,
        "latencies": latencies,
    }


# --- the run -------------------------------------------------------------------------------


def _setup(count: int) -> None:
    from chargers.models import ChargePoint, ChargingSession, Connector, Site
    from chargers.services import charger_password_hash

    site = Site.objects.create(name="Bench", country="DE", latitude=52.5, longitude=13.4)
    password_hash = charger_password_hash(PASSWORD)
    ChargePoint.objects.bulk_create(
        ChargePoint(site=site, identity=f"BENCH-{n:05d}", password_hash=password_hash, heartbeat_interval=300)
        for n in range(count)
    )
    ChargePoint.objects.bulk_create(
        ChargePoint(site=site, identity=identity, password_hash=password_hash, heartbeat_interval=300)
        for identity in METER_IDENTITIES
    )
    for charge_point in ChargePoint.objects.filter(identity__in=METER_IDENTITIES):
        connector = Connector.objects.create(charge_point=charge_point, connector_id=1)
        ChargingSession.objects.create(
            charge_point=charge_point,
            connector=connector,
            id_tag=f"TAG-{charge_point.identity}",
            started_at="2023-11-14T22:13:20Z",
            meter_start_wh=1000,
        )


def run() -> None:
    from chargers.models import ChargingSession, MeterValue

    settings_dict = connection.settings_dict
    original_name = settings_dict["NAME"]
    bench_name = f"{settings_dict['NAME']}_ocpp_bench"
    original_url = os.environ["DATABASE_URL"]
    settings_dict.setdefault("TEST", {})["NAME"] = bench_name
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    database_url = urlunsplit(urlsplit(original_url)._replace(path=f"/{bench_name}"))
    try:
        _setup(max(MANY, CONNECTIONS + 1))
        sessions = dict(ChargingSession.objects.values_list("charge_point__identity", "pk"))
        server, port = _start_ours(database_url)
        echo, echo_port = _start_echo()
        try:
            url, echo_url = f"ws://127.0.0.1:{port}/ocpp", f"ws://127.0.0.1:{echo_port}/ocpp"
            ids = [f"BENCH-{n:05d}" for n in range(1, CONNECTIONS + 1)]
            asyncio.run(_heartbeat_run(url, ids[:2]))  # warm up imports and connections
            echo_rate, echo_lat = asyncio.run(_heartbeat_run(echo_url, ids))
            our_rate, our_lat = asyncio.run(_heartbeat_run(url, ids))
            meter_rate, meter_lat = asyncio.run(_meter_run(url, sessions))
            time.sleep(1)
            stored = MeterValue.objects.filter(session__in=sessions.values()).count()
            many = asyncio.run(_many_run(url, [f"BENCH-{n:05d}" for n in range(MANY)], server.pid))
        finally:
            process_stop(server)
            process_stop(echo)
        _report(echo_rate, echo_lat, our_rate, our_lat, meter_rate, meter_lat, stored, many)
    finally:
        connection.creation.destroy_test_db(original_name, verbosity=0, keepdb=False)


def _report(echo_rate, echo_lat, our_rate, our_lat, meter_rate, meter_lat, stored, many) -> None:
    p50, p99 = (lambda values: _pct(values, 0.5)), (lambda values: _pct(values, 0.99))
    print(f"Heartbeat round trips, {CONNECTIONS} connections, {SECONDS:.0f} s each")
    print(f"{'server':<20}{'round trips/s':>15}{'p50 ms':>10}{'p99 ms':>10}")
    for name, rate, lat in (("websockets echo", echo_rate, echo_lat), ("evcharge OCPP", our_rate, our_lat)):
        print(f"{name:<20}{rate:>15.0f}{p50(lat):>10.2f}{p99(lat):>10.2f}")
    ratio = our_rate / echo_rate
    print(f"ratio evcharge/echo: {ratio:.2f} (target >= 0.30); p99 {p99(our_lat):.1f} ms (target < 20)")
    print()
    sent = len(meter_lat)
    print(f"MeterValues with persistence (2 sampled values each), {METER_CHARGERS} chargers in parallel")
    print(
        f"{'messages':>10}{'msg/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'rows expected':>15}{'rows stored':>13}"
    )
    row = f"{sent:>10}{meter_rate:>10.0f}{p50(meter_lat):>10.2f}{p99(meter_lat):>10.2f}"
    print(f"{row}{2 * sent:>15}{stored:>13}")
    print(f"rows lost: {2 * sent - stored}")
    print()
    per_connection = many["rss_growth_kib"] / max(1, many["connected"])
    print(f"{MANY} simultaneous connections, one heartbeat each spread over ~5 s")
    print(f"{'connected':>10}{'connect s':>11}{'RSS growth MiB':>16}{'KiB/conn':>10}{'beats':>8}", end="")
    print(f"{'p50 ms':>9}{'p99 ms':>9}")
    print(
        f"{many['connected']:>10}{many['connect_s']:>11.1f}{many['rss_growth_kib'] / 1024:>16.1f}"
        f"{per_connection:>10.1f}{many['beats']:>8}{p50(many['latencies']):>9.2f}{p99(many['latencies']):>9.2f}"
    )
