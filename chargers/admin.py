"""The operator back office for the charging network."""

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from chargers.choices import CommandAction, CommandSource, RegistrationStatus
from chargers.commands import InvalidCommand, command_send, command_wait
from chargers.models import (
    Authorization,
    AvailabilitySample,
    ChargePoint,
    ChargerCommand,
    ChargingSession,
    Connector,
    MeterValue,
    OcppMessage,
    Site,
    StatusChange,
    TransactionAnomaly,
)
from chargers.services import charger_approve, charger_set_password
from evcharge.core.admin import DeleteRefusalOnThePage

STATUS_COLOURS = {
    "Available": "#1a7f37",
    "Charging": "#0969da",
    "Preparing": "#0969da",
    "SuspendedEV": "#9a6700",
    "SuspendedEVSE": "#9a6700",
    "Finishing": "#0969da",
    "Reserved": "#8250df",
    "Unavailable": "#6e7781",
    "Faulted": "#cf222e",
    "online": "#1a7f37",
    "offline": "#6e7781",
    "accepted": "#1a7f37",
    "rejected": "#9a6700",
    "failed": "#cf222e",
    "timed_out": "#cf222e",
    "queued": "#6e7781",
    "sent": "#0969da",
}

# Ready-made payloads for the command buttons on a charger's page.
COMMAND_PRESETS = [
    ("Soft reset", "Reset", {"type": "Soft"}),
    ("Hard reset", "Reset", {"type": "Hard"}),
    ("Request status", "TriggerMessage", {"requestedMessage": "StatusNotification"}),
    ("Request heartbeat", "TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ("Get configuration", "GetConfiguration", {}),
    ("Clear cache", "ClearCache", {}),
    ("Unlock connector 1", "UnlockConnector", {"connectorId": 1}),
    ("Make operative", "ChangeAvailability", {"connectorId": 0, "type": "Operative"}),
    ("Make inoperative", "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}),
]


def badge(text: str, key: str | None = None):
    colour = STATUS_COLOURS.get(key or text, "#6e7781")
    return format_html(
        '<span style="background:{};color:#fff;border-radius:10px;padding:1px 8px;font-size:11px;'
        'white-space:nowrap">{}</span>',
        colour,
        text,
    )


@admin.register(Site)
class SiteAdmin(DeleteRefusalOnThePage, admin.ModelAdmin):
    list_display = ["name", "city", "country", "operator", "charger_count", "time_zone"]
    list_filter = ["country", "operator"]
    search_fields = ["name", "address", "city", "postal_code"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(chargers=Count("charge_points"))

    @admin.display(description="chargers", ordering="chargers")
    def charger_count(self, site):
        return site.chargers


class ConnectorInline(admin.TabularInline):
    model = Connector
    extra = 0
    fields = [
        "connector_id",
        "standard",
        "power_type",
        "max_power_kw",
        "status_badge",
        "error_code",
        "status_at",
    ]
    readonly_fields = ["status_badge", "error_code", "status_at"]

    @admin.display(description="status")
    def status_badge(self, connector):
        return badge(connector.status) if connector.pk else "-"


class OnlineFilter(admin.SimpleListFilter):
    title = "connection"
    parameter_name = "online"

    def lookups(self, request, model_admin):
        return [("yes", "online"), ("no", "offline")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(is_online=self.value() == "yes")
        return queryset


class CommandForm(forms.Form):
    action = forms.ChoiceField(choices=CommandAction.choices)
    payload = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        required=False,
        help_text='OCPP 1.6 JSON, camelCase, e.g. {"type": "Soft"}',
    )

    def clean_payload(self):
        text = self.cleaned_data["payload"].strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not JSON: {error}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("The payload must be a JSON object.")
        return value


@admin.register(ChargePoint)
class ChargePointAdmin(DeleteRefusalOnThePage, admin.ModelAdmin):
    list_display = [
        "identity",
        "online_badge",
        "connector_badges",
        "site",
        "vendor",
        "model",
        "registration_status",
        "last_seen_at",
    ]
    list_filter = [OnlineFilter, "registration_status", "site", "vendor", "connectors__status"]
    search_fields = ["identity", "serial_number", "vendor", "model", "site__name"]
    list_select_related = ["site"]
    readonly_fields = [
        "vendor",
        "model",
        "serial_number",
        "firmware_version",
        "iccid",
        "imsi",
        "meter_type",
        "meter_serial_number",
        "is_online",
        "last_seen_at",
        "last_boot_at",
        "last_status_at",
        "status",
        "error_code",
        "diagnostics_status",
        "firmware_status",
        "password_hash",
        "recent_activity",
    ]
    fieldsets = [
        (None, {"fields": ["identity", "site", "registration_status", "heartbeat_interval", "protocol"]}),
        (
            "Live",
            {
                "fields": [
                    "is_online",
                    "status",
                    "error_code",
                    "last_seen_at",
                    "last_boot_at",
                    "last_status_at",
                ]
            },
        ),
        (
            "Hardware",
            {
                "fields": [
                    "vendor",
                    "model",
                    "serial_number",
                    "firmware_version",
                    "meter_type",
                    "meter_serial_number",
                    "iccid",
                    "imsi",
                    "diagnostics_status",
                    "firmware_status",
                ]
            },
        ),
        ("Security", {"fields": ["password_hash"], "classes": ["collapse"]}),
        ("Recent activity", {"fields": ["recent_activity"]}),
    ]
    inlines = [ConnectorInline]
    actions = ["approve", "new_password", "request_status"]
    change_form_template = "admin/chargers/chargepoint/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("connectors")

    @admin.display(description="connection", ordering="is_online")
    def online_badge(self, charge_point):
        return badge("online" if charge_point.is_online else "offline")

    @admin.display(description="connectors")
    def connector_badges(self, charge_point):
        return format_html_join(
            " ",
            "{}",
            ((badge(f"{c.connector_id}: {c.status}", c.status),) for c in charge_point.connectors.all()),
        )

    @admin.display(description="status changes, commands and OCPP messages")
    def recent_activity(self, charge_point):
        if not charge_point.pk:
            return "-"
        changes = StatusChange.objects.filter(charge_point=charge_point)[:10]
        commands = ChargerCommand.objects.filter(charge_point=charge_point)[:10]
        log_url = reverse("admin:chargers_ocppmessage_changelist") + f"?identity={charge_point.identity}"
        return format_html(
            "<b>Status changes</b><ul>{}</ul><b>Commands</b><ul>{}</ul><a href='{}'>OCPP message log →</a>",
            format_html_join(
                "",
                "<li>{} #{} {} {}</li>",
                (
                    (c.timestamp.strftime("%Y-%m-%d %H:%M:%S"), c.connector_id, badge(c.status), c.info)
                    for c in changes
                ),
            ),
            format_html_join(
                "",
                "<li>{} {} {} {}</li>",
                (
                    (c.created_at.strftime("%Y-%m-%d %H:%M:%S"), c.action, badge(c.status), c.error)
                    for c in commands
                ),
            ),
            log_url,
        )

    # --- commands --------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<path:object_id>/command/",
                self.admin_site.admin_view(self.command_view),
                name="chargers_chargepoint_command",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "command_presets": [
                (label, action, json.dumps(payload)) for label, action, payload in COMMAND_PRESETS
            ],
            "command_form": CommandForm(),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def command_view(self, request, object_id):
        charge_point = get_object_or_404(ChargePoint, pk=object_id)
        if not self.has_change_permission(request, charge_point):
            messages.error(request, "You may not send commands to chargers.")
            return HttpResponseRedirect(reverse("admin:chargers_chargepoint_change", args=[object_id]))
        back = HttpResponseRedirect(reverse("admin:chargers_chargepoint_change", args=[object_id]))
        if request.method != "POST":
            return back
        form = CommandForm(request.POST)
        if not form.is_valid():
            messages.error(request, f"Command not sent: {form.errors.as_text()}")
            return back
        try:
            command = command_send(
                charge_point=charge_point,
                action=form.cleaned_data["action"],
                payload=form.cleaned_data["payload"],
                source=CommandSource.ADMIN,
                requested_by=request.user,
            )
        except InvalidCommand as error:
            messages.error(request, f"Command not sent: {error.message} {error.details or ''}")
            return back
        command = command_wait(command=command, seconds=5)
        level = messages.SUCCESS if command.status == "accepted" else messages.WARNING
        answer = json.dumps(command.response) if command.response else command.error
        messages.add_message(request, level, f"{command.action}: {command.status}. {answer}")
        return back

    # --- actions ---------------------------------------------------------------------

    @admin.action(description="Approve pending chargers (new password shown once)")
    def approve(self, request, queryset):
        for charge_point in queryset.filter(registration_status=RegistrationStatus.PENDING):
            password = charger_approve(charge_point=charge_point)
            messages.success(
                request, f"{charge_point.identity} accepted. OCPP password (shown once): {password}"
            )

    @admin.action(description="Set a new OCPP password (shown once)")
    def new_password(self, request, queryset):
        for charge_point in queryset:
            password = charger_set_password(charge_point=charge_point)
            messages.success(request, f"{charge_point.identity}: new OCPP password (shown once): {password}")

    @admin.action(description="Ask for current status (TriggerMessage)")
    def request_status(self, request, queryset):
        for charge_point in queryset:
            command = command_send(
                charge_point=charge_point,
                action="TriggerMessage",
                payload={"requestedMessage": "StatusNotification"},
                source=CommandSource.ADMIN,
                requested_by=request.user,
            )
            messages.info(request, f"{charge_point.identity}: {command.status} {command.error}")


class MeterValueInline(admin.TabularInline):
    model = MeterValue
    extra = 0
    can_delete = False
    fields = ["timestamp", "measurand", "phase", "value", "unit", "context"]
    readonly_fields = fields
    ordering = ["timestamp"]
    max_num = 0


@admin.register(ChargingSession)
class ChargingSessionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "charge_point",
        "connector_no",
        "id_tag",
        "status_badge",
        "started_at",
        "stopped_at",
        "energy_kwh",
        "needs_review",
    ]
    list_filter = ["status", "needs_review", "stop_reason", "charge_point__site"]
    search_fields = ["=id", "id_tag", "charge_point__identity"]
    list_select_related = ["charge_point", "connector"]
    date_hierarchy = "started_at"
    readonly_fields = [
        "charge_point",
        "connector",
        "id_tag",
        "id_token",
        "status",
        "start_status",
        "started_at",
        "meter_start_wh",
        "stopped_at",
        "meter_stop_wh",
        "stop_reason",
        "stop_id_tag",
        "energy_wh",
        "last_meter_at",
        "reservation_id",
        "remote_command",
        "review_reasons",
        "energy_chart",
    ]
    fields = [*readonly_fields, "needs_review"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # sessions carry money: corrections go through billing

    @admin.display(description="connector")
    def connector_no(self, session):
        return session.connector.connector_id

    @admin.display(description="status", ordering="status")
    def status_badge(self, session):
        return badge(
            session.status,
            {"active": "Charging", "completed": "Available", "refused": "Faulted"}[session.status],
        )

    @admin.display(description="kWh", ordering="energy_wh")
    def energy_kwh(self, session):
        return f"{session.energy_wh / 1000:.3f}"

    @admin.display(description="energy over time")
    def energy_chart(self, session):
        """An inline SVG line of the energy register: no JavaScript, no external assets."""
        points = list(
            session.meter_values.filter(measurand="Energy.Active.Import.Register", phase="")
            .order_by("timestamp")
            .values_list("timestamp", "value")
        )
        if len(points) < 2:
            return "fewer than two meter readings"
        width, height = 600, 160
        t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
        v0 = float(session.meter_start_wh)
        v1 = max(float(v) for _, v in points)
        span_t, span_v = max(t1 - t0, 1), max(v1 - v0, 1)
        coords = " ".join(
            f"{(ts.timestamp() - t0) / span_t * width:.1f},{height - (float(v) - v0) / span_v * height:.1f}"
            for ts, v in points
        )
        return format_html(
            '<svg width="{w}" height="{h}" viewBox="-5 -5 {w2} {h2}" style="background:#f6f8fa">'
            '<polyline fill="none" stroke="#0969da" stroke-width="2" points="{pts}"/></svg>'
            "<div>{start} → {end}: {kwh} kWh over {n} readings</div>",
            w=width,
            h=height,
            w2=width + 10,
            h2=height + 10,
            pts=coords,
            start=points[0][0].strftime("%H:%M:%S"),
            end=points[-1][0].strftime("%H:%M:%S"),
            kwh=f"{(v1 - v0) / 1000:.3f}",
            n=len(points),
        )


@admin.register(ChargerCommand)
class ChargerCommandAdmin(admin.ModelAdmin):
    list_display = ["created_at", "charge_point", "action", "status_badge", "source", "requested_by", "error"]
    list_filter = ["status", "action", "source"]
    search_fields = ["charge_point__identity", "unique_id"]
    list_select_related = ["charge_point", "requested_by"]
    readonly_fields = [
        "charge_point",
        "action",
        "payload",
        "status",
        "response",
        "error",
        "unique_id",
        "source",
        "requested_by",
        "created_at",
        "sent_at",
        "completed_at",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, command):
        return badge(command.status)


@admin.register(OcppMessage)
class OcppMessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "identity", "direction", "message_type", "action", "unique_id", "short_raw"]
    list_filter = ["direction", "message_type", "action"]
    search_fields = ["=identity", "unique_id", "action"]
    readonly_fields = [
        "charge_point",
        "identity",
        "direction",
        "message_type",
        "unique_id",
        "action",
        "raw",
        "created_at",
    ]
    show_full_result_count = False  # the log is big: no COUNT(*) per page

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def lookup_allowed(self, lookup, value, request=None):
        return lookup == "identity" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="frame")
    def short_raw(self, message):
        return message.raw[:120]


@admin.register(TransactionAnomaly)
class TransactionAnomalyAdmin(admin.ModelAdmin):
    list_display = ["created_at", "charge_point", "kind", "transaction_id", "resolved"]
    list_filter = ["kind", "resolved"]
    readonly_fields = ["charge_point", "kind", "transaction_id", "payload", "created_at"]
    fields = [*readonly_fields, "resolved"]

    def has_add_permission(self, request):
        return False


@admin.register(AvailabilitySample)
class AvailabilitySampleAdmin(admin.ModelAdmin):
    list_display = ["day", "charge_point", "availability", "samples"]
    list_filter = ["day"]
    search_fields = ["charge_point__identity"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="online")
    def availability(self, sample):
        return f"{100 * sample.online_samples / sample.samples:.1f} %" if sample.samples else "-"


@admin.register(Authorization)
class AuthorizationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "charge_point", "id_tag", "status", "session", "never_started"]
    list_filter = ["status", "never_started"]
    search_fields = ["id_tag", "charge_point__identity"]
    list_select_related = ["charge_point", "session"]
    readonly_fields = ["charge_point", "id_tag", "status", "created_at", "session", "never_started"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
