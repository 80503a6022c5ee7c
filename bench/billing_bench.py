"""Billing: price and invoice N finished sessions across A accounts, next to plain SQL.

Both pipelines run in the same run over the same rows, in a database of their own
(``<DATABASE name>_billing_bench``, created and dropped here; nothing else is touched):

- **plain SQL**: one ``INSERT … SELECT`` prices every session (energy split linearly at the
  17:00 and 20:00 boundaries, flat fee, half-up rounding, VAT) and one ``GROUP BY`` makes the
  per-account invoice totals;
- **evcharge**: ``billing.services.cdrs_create_for_sessions`` in batches of ``BILLING_CDR_BATCH``
  (5,000) sessions, as the CDR sweep takes them, over a process pool (the same path the
  per-stop task and the sweep take: the native core or the engine per session, every CDR row
  with its priced periods written by ``COPY``), then the billing cycle
  as the hourly task fans it out to the workers: ``billing.services.billing_cycle_batches``,
  then ``invoices_close_periods`` per batch over the same pool (one transaction per batch:
  lines from the unbilled queue by ``INSERT … SELECT``, totals and VAT summed by the database,
  consecutive gapless numbers).

It then checks that every account's invoice equals the SQL totals to the cent, runs the
evcharge pipeline again (which must create nothing), and prints time and peak memory (RSS of
the Python processes; PostgreSQL's own memory is not counted).

Sizes: ``BENCH_BILLING_SESSIONS`` (default 100,000), ``BENCH_BILLING_ACCOUNTS`` (1,000),
``BENCH_WORKERS`` (CPU count). The defaults keep ``make bench`` short; the issue's full size is
``BENCH_BILLING_SESSIONS=1000000 BENCH_BILLING_ACCOUNTS=10000`` (about ten times longer: both
pipelines are linear in sessions and accounts).
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import resource
import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, connections

SESSIONS = int(os.environ.get("BENCH_BILLING_SESSIONS", "100000"))
ACCOUNTS = int(os.environ.get("BENCH_BILLING_ACCOUNTS", "1000"))
WORKERS = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1)))
CHARGERS = 100
CYCLE_NOW = datetime(2026, 11, 1, 1, tzinfo=UTC)  # closes October 2026, where the sessions are

TARIFF = {
    "id": "BENCH",
    "currency": "EUR",
    "elements": [
        {
            "price_components": [{"type": "ENERGY", "price": "0.40", "vat": "19", "step_size": 1}],
            "restrictions": {"start_time": "17:00", "end_time": "20:00"},
        },
        {
            "price_components": [
                {"type": "ENERGY", "price": "0.30", "vat": "19", "step_size": 1},
                {"type": "FLAT", "price": "0.50", "vat": "19", "step_size": 1},
            ]
        },
    ],
}

# The same tariff in SQL: 0.30/kWh, +0.10/kWh for energy between 17:00 and 20:00 (UTC site),
# spread linearly over the session; 0.50 flat; total rounded half-up; VAT 19 % rounded half-up.
SQL_PIPELINE = """
SET LOCAL TIME ZONE 'UTC';
DROP TABLE IF EXISTS bench_sql_cdr, bench_sql_invoice;
CREATE UNLOGGED TABLE bench_sql_cdr AS
SELECT session_id, account_id, excl, round(excl * 0.19, 2) AS vat
FROM (
    SELECT s.id AS session_id, a.id AS account_id,
           round(
               (s.meter_stop_wh - s.meter_start_wh) * 0.30 / 1000
               + (s.meter_stop_wh - s.meter_start_wh) * 0.10 / 1000
                 * greatest(0, extract(epoch FROM
                       least(s.stopped_at, date_trunc('day', s.started_at) + interval '20 hours')
                       - greatest(s.started_at, date_trunc('day', s.started_at) + interval '17 hours')))
                 / extract(epoch FROM s.stopped_at - s.started_at)
               + 0.50, 2) AS excl
    FROM chargers_chargingsession s
    JOIN accounts_idtoken t ON t.id = s.id_token_id
    JOIN billing_billingaccount a ON a.organization_id = t.organization_id
    WHERE s.stopped_at IS NOT NULL
) priced;
CREATE UNLOGGED TABLE bench_sql_invoice AS
SELECT account_id, count(*) AS n, sum(excl) AS excl, sum(vat) AS vat, sum(excl + vat) AS incl
FROM bench_sql_cdr GROUP BY account_id;
"""

COMPARE = """
SELECT count(*) FILTER (WHERE o.account_id IS NOT NULL AND q.account_id IS NOT NULL
                          AND o.n = q.n AND o.excl = q.excl AND o.vat = q.vat AND o.incl = q.incl),
       count(*)
FROM bench_sql_invoice q
FULL JOIN (
    SELECT i.account_id, count(l.cdr_id) AS n,
           i.total_excl_vat AS excl, i.total_vat AS vat, i.total_incl_vat AS incl
    FROM billing_invoice i JOIN billing_invoiceline l ON l.invoice_id = i.id
    GROUP BY i.id
) o ON o.account_id = q.account_id
"""


def _peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024  # Linux reports KiB


def _measured(fn, queue) -> None:
    started = time.perf_counter()
    result = fn()
    queue.put((time.perf_counter() - started, _peak_rss_mib(), result))


def measure(fn) -> tuple[float, float, dict]:
    """Run ``fn`` in a fresh process: (seconds, peak RSS MiB of it and its children, result)."""
    connections.close_all()  # the child opens its own connection
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    process = ctx.Process(target=_measured, args=(fn, queue), daemon=False)
    process.start()
    while True:
        try:
            outcome = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not process.is_alive():
                raise RuntimeError(f"benchmark step died (exit {process.exitcode})") from None
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"benchmark step failed (exit {process.exitcode})")
    return outcome


# --- data --------------------------------------------------------------------------------


def _insert_select(
    model, exprs: dict[str, str], tail: str, *, prefix: str = "", prefix_params=(), tail_params=()
) -> None:
    """``INSERT INTO <model> SELECT …`` setting every NOT NULL column (model defaults for the rest)."""
    columns, values, params = [], [], list(prefix_params)
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.column in exprs:
            columns.append(field.column)
            values.append(exprs[field.column])
        elif not field.null:
            columns.append(field.column)
            values.append("%s")
            params.append(field.get_db_prep_save(field.get_default(), connection))
    # Built from our own model metadata and integer sizes, never from input.
    sql = f"{prefix} INSERT INTO {model._meta.db_table} ({', '.join(columns)}) SELECT {', '.join(values)} {tail}"  # noqa: E501
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *tail_params])


def generate() -> dict:
    from accounts.models import IdToken, Organization
    from billing import services
    from billing.models import BillingAccount
    from chargers.models import ChargePoint, ChargingSession, Connector, Site

    tariff = services.tariff_save_ocpi(data=TARIFF)
    services.tariff_assign(tariff=tariff, scope="default")
    site = Site.objects.create(name="Bench site", country="DE", latitude=0, longitude=0, time_zone="UTC")
    points = ChargePoint.objects.bulk_create(
        ChargePoint(site=site, identity=f"BENCH-{i:04d}") for i in range(CHARGERS)
    )
    Connector.objects.bulk_create(Connector(charge_point=p, connector_id=1) for p in points)
    orgs = Organization.objects.bulk_create(
        Organization(name=f"Bench fleet {i:06d}", kind=Organization.Kind.FLEET) for i in range(ACCOUNTS)
    )
    BillingAccount.objects.bulk_create(BillingAccount(name=o.name, organization=o) for o in orgs)
    IdToken.objects.bulk_create(IdToken(uid=f"BENCH{i:07d}", organization=o) for i, o in enumerate(orgs))
    prefix = """
    WITH cps AS (
        SELECT c.id AS connector_id, c.charge_point_id, row_number() OVER (ORDER BY c.id) - 1 AS rn
        FROM chargers_connector c JOIN chargers_chargepoint p ON p.id = c.charge_point_id
        WHERE p.identity LIKE 'BENCH-%%'
    ), toks AS (
        SELECT id, uid, row_number() OVER (ORDER BY id) - 1 AS rn
        FROM accounts_idtoken WHERE uid LIKE 'BENCH%%'
    ), g AS (
        SELECT g,
               timestamptz '2026-10-01 00:00+00' + ((g * 7) %% 31) * interval '1 day'
                 + (360 + (g * 37) %% 900) * interval '1 minute' AS started_at,
               10 + (g * 13) %% 111 AS minutes,
               1000 + (g * 7919) %% 59000 AS energy
        FROM generate_series(0::bigint, %s) g
    )"""
    _insert_select(
        ChargingSession,
        {
            "charge_point_id": "cps.charge_point_id",
            "connector_id": "cps.connector_id",
            "id_tag": "toks.uid",
            "id_token_id": "toks.id",
            "status": "'completed'",
            "start_status": "'Accepted'",
            "started_at": "g.started_at",
            "meter_start_wh": "g.g",
            "stopped_at": "g.started_at + g.minutes * interval '1 minute'",
            "meter_stop_wh": "g.g + g.energy",
            "stop_reason": "'Local'",
            "energy_wh": "g.energy",
            "created_at": "now()",
            "updated_at": "now()",
        },
        "FROM g JOIN cps ON cps.rn = g.g %% %s JOIN toks ON toks.rn = g.g %% %s",
        prefix_params=[SESSIONS - 1],
        tail_params=[CHARGERS, ACCOUNTS],
        prefix=prefix,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"sessions": ChargingSession.objects.count(), "accounts": BillingAccount.objects.count()}


# --- the two pipelines -------------------------------------------------------------------


def sql_pipeline() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(SQL_PIPELINE)
        cursor.execute("COMMIT")
        cursor.execute(
            "SELECT (SELECT count(*) FROM bench_sql_cdr), (SELECT count(*) FROM bench_sql_invoice)"
        )
        cdrs, invoices = cursor.fetchone()
    return {"cdrs": cdrs, "invoices": invoices}


def _price_batch(ids: list[int]) -> int:
    from billing.services import cdrs_create_for_sessions

    return cdrs_create_for_sessions(session_ids=ids)


def _invoice_batch(account_ids: list[int]) -> int:
    from billing.services import invoices_close_periods

    return len(invoices_close_periods(account_ids=account_ids, now=CYCLE_NOW, render_pdf=False))


def evcharge_pipeline() -> dict:
    from billing.services import billing_cycle_batches, cdrs_waiting_in_another_currency_report, primary_keys
    from chargers.models import ChargingSession

    started = time.perf_counter()
    ids = primary_keys(ChargingSession.objects.filter(stopped_at__isnull=False).order_by("pk"))
    size = settings.BILLING_CDR_BATCH  # the CDR sweep's batch
    batches = [ids[i : i + size] for i in range(0, len(ids), size)]
    connections.close_all()  # pool processes open their own connections
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        cdrs = sum(pool.imap_unordered(_price_batch, batches))
    priced = time.perf_counter() - started
    # The hourly task's fan-out: one transaction per batch of accounts, on every worker.
    batches = billing_cycle_batches(now=CYCLE_NOW)
    connections.close_all()
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        invoices = sum(pool.imap_unordered(_invoice_batch, batches))
    cdrs_waiting_in_another_currency_report()
    return {
        "cdrs": cdrs,
        "invoices": invoices,
        "pricing_s": priced,
        "invoicing_s": time.perf_counter() - started - priced,
    }


# --- run ---------------------------------------------------------------------------------


def run() -> None:
    settings_dict = connection.settings_dict
    original_name = settings_dict["NAME"]
    bench_name = f"{settings_dict['NAME']}_billing_bench"
    settings_dict.setdefault("TEST", {})["NAME"] = bench_name
    connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        print(f"{SESSIONS:,} sessions, {ACCOUNTS:,} accounts, {WORKERS} pricing processes; {bench_name}")
        gen = measure(generate)
        sql = measure(sql_pipeline)
        ours = measure(evcharge_pipeline)
        rerun = measure(evcharge_pipeline)
        with connection.cursor() as cursor:
            cursor.execute(COMPARE)
            equal, compared = cursor.fetchone()
        rows = [
            ("data generation", gen, f"{gen[2]['sessions']:,} sessions, {gen[2]['accounts']:,} accounts"),
            (
                "plain SQL: price + invoice totals",
                sql,
                f"{sql[2]['cdrs']:,} priced, {sql[2]['invoices']:,} totals",
            ),
            (
                "evcharge: price (CDRs) + invoice",
                ours,
                f"{ours[2]['cdrs']:,} CDRs in {ours[2]['pricing_s']:.1f} s, "
                f"{ours[2]['invoices']:,} invoices in {ours[2]['invoicing_s']:.1f} s",
            ),
            (
                "evcharge rerun",
                rerun,
                f"{rerun[2]['cdrs']:,} CDRs, {rerun[2]['invoices']:,} invoices created "
                f"(pricing {rerun[2]['pricing_s']:.1f} s, invoicing {rerun[2]['invoicing_s']:.1f} s)",
            ),
        ]
        print(f"{'step':36} {'time s':>9} {'peak RSS MiB':>13}  result")
        for label, (seconds, rss, _), note in rows:
            print(f"{label:36} {seconds:9.1f} {rss:13.0f}  {note}")
        print(f"evcharge / SQL time: {ours[0] / sql[0]:.1f}x; memory: {ours[1] / sql[1]:.1f}x")
        print(f"invoices equal to the SQL totals to the cent: {equal:,} of {compared:,} accounts")
        ok = equal == compared == ACCOUNTS and rerun[2]["cdrs"] == 0 and rerun[2]["invoices"] == 0
        print("OK" if ok else "MISMATCH")
    finally:
        connections.close_all()
        connection.creation.destroy_test_db(original_name, verbosity=0, keepdb=False)
