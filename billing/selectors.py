"""Reads that matter: which tariff applies, what a session measured, what a caller may see.

The ``*_visible_to`` functions are the one place each billing model is scoped to a caller
(staff: everything; otherwise their own billing account and those of organizations they own
or administer). Swap them for ``accounts.scoping`` in one step when that lands.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, F, OuterRef, Q, QuerySet

from billing.choices import SCOPE_PRECEDENCE, AssignmentScope
from billing.models import BillingAccount, Cdr, Tariff, TariffAssignment, UnbilledCdr
from billing.pricing import Reading

ENERGY_REGISTER = "Energy.Active.Import.Register"
# The whole-meter register at the outlet (OCPP's default location); an Inlet or EV reading
# of the same register would mix two meters into one curve.
REGISTER_LOCATIONS = ("", "Outlet")


def tariff_for_session(*, session) -> Tariff | None:
    """The tariff that prices ``session``: organization contract, connector, charger, site, default."""
    token = session.id_token
    organization_id = token.organization_id if token is not None else None
    charge_point = session.charge_point
    match = Q(scope=AssignmentScope.DEFAULT)
    match |= Q(scope=AssignmentScope.CONNECTOR, connector_id=session.connector_id)
    match |= Q(scope=AssignmentScope.CHARGE_POINT, charge_point_id=session.charge_point_id)
    if charge_point.site_id is not None:
        match |= Q(scope=AssignmentScope.SITE, site_id=charge_point.site_id)
    if organization_id is not None:
        match |= Q(scope=AssignmentScope.ORGANIZATION, organization_id=organization_id)
    assignments = {
        a.scope: a
        for a in TariffAssignment.objects.filter(match).select_related("tariff")
        if tariff_valid_at(a.tariff, session.started_at)
    }
    for scope in SCOPE_PRECEDENCE:
        if scope in assignments:
            return assignments[scope].tariff
    return None


def tariff_valid_at(tariff: Tariff, moment: datetime) -> bool:
    """OCPI ``start_date_time`` (inclusive) / ``end_date_time`` (exclusive) of a tariff."""
    if tariff.start_date_time is not None and moment < tariff.start_date_time:
        return False
    return tariff.end_date_time is None or moment < tariff.end_date_time


def tariff_resolver():
    """``tariff_for_session`` for many sessions: loads every assignment once, then resolves in memory
    from a session's ids (its token's organization, connector, charger, site) and start."""
    by_scope: dict[str, dict[int | None, Tariff]] = {scope: {} for scope in SCOPE_PRECEDENCE}
    target = {
        AssignmentScope.ORGANIZATION: "organization_id",
        AssignmentScope.CONNECTOR: "connector_id",
        AssignmentScope.CHARGE_POINT: "charge_point_id",
        AssignmentScope.SITE: "site_id",
    }
    for assignment in TariffAssignment.objects.select_related("tariff"):
        key = getattr(assignment, target[assignment.scope]) if assignment.scope in target else None
        by_scope[assignment.scope][key] = assignment.tariff

    # The scopes' tables in precedence order, each with the session fact it is keyed by.
    fact = {
        AssignmentScope.ORGANIZATION: 0,
        AssignmentScope.CONNECTOR: 1,
        AssignmentScope.CHARGE_POINT: 2,
        AssignmentScope.SITE: 3,
    }
    chain = tuple((fact.get(scope), by_scope[scope]) for scope in SCOPE_PRECEDENCE)

    def resolve(
        *,
        organization_id: int | None,
        connector_id: int | None,
        charge_point_id: int | None,
        site_id: int | None,
        started_at: datetime,
    ) -> Tariff | None:
        facts = (organization_id, connector_id, charge_point_id, site_id)
        for at, tariffs in chain:  # a plain loop: it runs once per session priced
            key = None if at is None else facts[at]
            if (key is not None or at is None) and key in tariffs:
                tariff = tariffs[key]
                if tariff_valid_at(tariff, started_at):
                    return tariff
        return None

    return resolve


def session_time_zone(*, session) -> str:
    site = session.charge_point.site
    return site.time_zone if site is not None else "UTC"


def register_values(meter_values: QuerySet) -> QuerySet:
    """The meter values pricing reads: the whole-meter energy register (no phase, at the outlet)."""
    return meter_values.filter(measurand=ENERGY_REGISTER, phase="", location__in=REGISTER_LOCATIONS)


def with_stop_reading(
    readings: list[Reading], stopped_at: datetime | None, meter_stop_wh: int | None
) -> list[Reading]:
    """``readings`` plus the StopTransaction register reading, when the session has a valid one."""
    if stopped_at is None or meter_stop_wh is None or meter_stop_wh < 0:
        return readings
    return [*readings, Reading(stopped_at, meter_stop_wh)]  # whole Wh: an int, as the engine takes it


def session_readings(*, session, until: datetime | None = None) -> list[Reading]:
    """Energy register readings of ``session`` (whole-meter values, any order), Wh."""
    rows = register_values(session.meter_values.all())
    if until is not None:
        rows = rows.filter(timestamp__lte=until)
    readings = [Reading(ts, value) for ts, value in rows.values_list("timestamp", "value")]
    return with_stop_reading(readings, session.stopped_at, session.meter_stop_wh)


def sessions_without_cdr(*, stopped_before: datetime, stopped_after: datetime | None = None) -> QuerySet:
    """Finished sessions that have no CDR yet (the safety net for a lost pricing message),
    stopped before ``stopped_before`` and, when given, at or after ``stopped_after``."""
    from chargers.models import ChargingSession

    sessions = ChargingSession.objects.filter(stopped_at__isnull=False, stopped_at__lt=stopped_before)
    if stopped_after is not None:
        sessions = sessions.filter(stopped_at__gte=stopped_after)
    return sessions.exclude(Exists(Cdr.objects.filter(session_id=OuterRef("pk")))).order_by("pk")


def accounts_with_unbilled_cdrs(*, before: datetime) -> QuerySet[BillingAccount]:
    """Accounts with a CDR waiting for an invoice that stopped before ``before`` (one index probe
    each in the unbilled queue, however long the history)."""
    unbilled = UnbilledCdr.objects.filter(account=OuterRef("pk"), stopped_at__lt=before)
    return BillingAccount.objects.filter(Exists(unbilled)).order_by("pk")


def cdrs_waiting_in_another_currency() -> QuerySet[Cdr]:
    """Unbilled CDRs priced in a currency other than their account's: an invoice is in its
    account's one currency, so the cycle leaves these waiting (docs/billing.md §6) and operators
    find them here (the CDR admin's "on an invoice" filter; the cycle's result and log)."""
    waiting = UnbilledCdr.objects.exclude(currency=F("account__currency")).values("cdr_id")
    return Cdr.objects.filter(pk__in=waiting)
