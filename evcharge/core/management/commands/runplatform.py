"""Run the whole platform on one machine: ``make run``.

Migrates, seeds demo data, then starts and supervises:
  - the ASGI server (uvicorn): API, admin, health, metrics and the OCPP WebSocket on one port;
  - a Celery worker and Celery beat (schedules from the database, editable in the admin).
Ctrl-C (or SIGTERM) stops every child; children also die with this process (PDEATHSIG),
so nothing is left running.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from evcharge.core.management.commands.seed_demo import DEMO_EMAIL, demo_password

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Not Linux: no prctl, but the Ctrl-C handling below still stops the children.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Command(BaseCommand):
    help = "Migrate, seed demo data and run web + OCPP, worker and beat until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-seed", action="store_true", help="skip demo data")

    def handle(self, *args, host: str, port: int, no_seed: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database migrated")
        if not no_seed:
            call_command("seed_demo")

        python = sys.executable
        processes = {
            "web+ocpp": [
                python,
                "-m",
                "uvicorn",
                "evcharge.asgi:application",
                "--host",
                host,
                "--port",
                str(port),
                "--ws-ping-interval",
                "20",
                "--ws-ping-timeout",
                "20",
                "--ws-per-message-deflate",
                "false",
                "--no-access-log",
                "--lifespan",
                "off",
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "evcharge",
                "worker",
                "--loglevel",
                "INFO",
                "--pool",
                "threads",
                "--concurrency",
                "4",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            "beat": [python, "-m", "celery", "-A", "evcharge", "beat", "--loglevel", "INFO"],
        }
        extra = getattr(settings, "RUNPLATFORM_EXTRA_PROCESSES", {})
        processes.update({name: [python, "manage.py", *argv] for name, argv in extra.items()})

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def _stop(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        try:
            for name, argv in processes.items():
                children[name] = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=settings.BASE_DIR,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            self._banner(host, port)
            while True:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with {child.returncode}; stopping")
                        raise SystemExit(1)
                time.sleep(0.5)
        except KeyboardInterrupt:
            stopping = True
        finally:
            self._stop_all(children)
        if stopping:
            self.stdout.write("stopped")

    def _stop_all(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def _banner(self, host: str, port: int) -> None:
        base = f"http://{host}:{port}"
        mode = "embedded (SQLite, in-process cache, file broker)" if settings.EMBEDDED else "served"
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "evcharge is running (" + mode + ")",
                    f"  back office  {base}/admin/   login {DEMO_EMAIL} / {demo_password()}",
                    f"  API          {base}/api/v1/   docs {base}/api/docs/",
                    f"  health       {base}/health/ready   metrics {base}/metrics",
                    f"  OCPP 1.6J    ws://{host}:{port}/ocpp/<charger identity>",
                    "Ctrl-C stops everything.",
                    "",
                ]
            )
        )
