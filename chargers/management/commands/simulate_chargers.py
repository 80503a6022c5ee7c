"""Drive simulated chargers against an OCPP endpoint (any central system, not only ours).

python manage.py simulate_chargers --url ws://127.0.0.1:8000/ocpp --count 10 --password s3cret
python manage.py simulate_chargers --demo     # the demo chargers of `make run`
"""

import asyncio
import contextlib
import signal

from django.core.management.base import BaseCommand

from chargers.simulator import Behaviour, run_charger


class Command(BaseCommand):
    help = "Run N simulated OCPP 1.6J chargers: boot, status, heartbeats, sessions with meter values."

    def add_arguments(self, parser):
        parser.add_argument(
            "--url", default="ws://127.0.0.1:8000/ocpp", help="endpoint; /<identity> is appended"
        )
        parser.add_argument("--count", type=int, default=3)
        parser.add_argument("--prefix", default="SIM-", help="identities are <prefix>0001, <prefix>0002, ...")
        parser.add_argument("--password", default=None, help="HTTP Basic password (security profile 1)")
        parser.add_argument("--id-tags", default="", help="comma-separated idTags to charge with")
        parser.add_argument("--connectors", type=int, default=2)
        parser.add_argument("--session-seconds", type=float, default=120)
        parser.add_argument("--idle-seconds", type=float, default=30)
        parser.add_argument("--meter-interval", type=float, default=10)
        parser.add_argument("--power-w", type=int, default=22000)
        parser.add_argument(
            "--heartbeat", type=float, default=0, help="seconds; 0 = the interval boot returns"
        )
        parser.add_argument("--fault-rate", type=float, default=0.0, help="chance of a fault per meter tick")
        parser.add_argument("--disconnect-every", type=float, default=0, help="drop and reconnect every N s")
        parser.add_argument("--repeat-start", action="store_true", help="resend every StartTransaction once")
        parser.add_argument(
            "--duration", type=float, default=0, help="stop after N seconds; 0 = until Ctrl-C"
        )
        parser.add_argument("--demo", action="store_true", help="the seeded demo chargers and tokens")

    def handle(self, *args, **options):
        if options["demo"]:
            from chargers.demo import DEMO_CHARGERS, DEMO_PREFIX, DEMO_TAGS, demo_charger_password

            options.update(
                prefix=DEMO_PREFIX,
                count=DEMO_CHARGERS,
                password=demo_charger_password(),
                id_tags=",".join(DEMO_TAGS),
            )
        asyncio.run(self._run(options))

    async def _run(self, options) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        if options["duration"]:
            loop.call_later(options["duration"], stop.set)
        tags = [tag for tag in options["id_tags"].split(",") if tag]
        behaviour = dict(
            connectors=options["connectors"],
            meter_interval=options["meter_interval"],
            power_w=options["power_w"],
            fault_rate=options["fault_rate"],
            repeat_start=options["repeat_start"],
        )
        chargers = []
        for n in range(1, options["count"] + 1):
            identity = f"{options['prefix']}{n:04d}"
            # each charger charges with its own share of the tags, so two never share one
            own_tags = tags[n - 1 :: options["count"]] if len(tags) >= options["count"] else tags
            chargers.append(
                run_charger(
                    options["url"],
                    identity,
                    options["password"],
                    behaviour=Behaviour(**behaviour),
                    id_tags=own_tags,
                    session_seconds=options["session_seconds"],
                    idle_seconds=options["idle_seconds"],
                    heartbeat=options["heartbeat"],
                    stop=stop,
                    disconnect_every=options["disconnect_every"],
                )
            )
        self.stdout.write(f"simulating {len(chargers)} chargers against {options['url']}")
        await asyncio.gather(*chargers)
        self.stdout.write("simulator stopped")
