"""Billing back office: tariffs with inline elements and a pricing preview, read-only CDRs,
invoices with PDF, run-billing-now, mark-paid and void; payments and credit notes through services.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Max
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from billing import selectors, services
from billing.choices import AssignmentScope
from billing.models import (
    BillingAccount,
    Cdr,
    CreditNote,
    Invoice,
    InvoiceLine,
    Payment,
    Refund,
    Tariff,
    TariffAssignment,
    TariffElement,
)
from billing.ocpi import OcpiError, element_to_ocpi, tariff_from_ocpi
from billing.pricing import Reading, price_session
from evcharge.core.admin import DeleteRefusalOnThePage
from evcharge.core.errors import DomainError
from evcharge.core.validators import validate_time_zone

COMPONENT_FIELDSETS = [
    (label, {"fields": [(f"{prefix}_price", f"{prefix}_vat", f"{prefix}_step_size")]})
    for label, prefix in (
        ("Energy (per kWh; step in Wh)", "energy"),
        ("Time charging (per hour; step in seconds)", "time"),
        ("Parking time (per hour; step in seconds)", "parking_time"),
        ("Flat (per session)", "flat"),
    )
]


class TariffElementForm(forms.ModelForm):
    class Meta:
        model = TariffElement
        fields = [f.name for f in TariffElement._meta.fields if f.name not in ("id", "tariff")]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        candidate = TariffElement(**{k: v for k, v in cleaned.items() if k not in ("id", "DELETE", "tariff")})
        try:
            tariff_from_ocpi(
                {
                    "currency": "EUR",
                    "elements": [json.loads(json.dumps(element_to_ocpi(candidate), default=str))],
                }
            )
        except OcpiError as error:
            raise ValidationError(str(error)) from None
        return cleaned


class TariffElementInline(admin.StackedInline):
    model = TariffElement
    form = TariffElementForm
    extra = 0
    min_num = 1
    ordering = ["position"]
    fieldsets = [
        (None, {"fields": ["position"]}),
        *COMPONENT_FIELDSETS,
        (
            "Restrictions (local time of the site)",
            {
                "fields": [
                    ("start_time", "end_time"),
                    ("start_date", "end_date"),
                    "day_of_week",
                    ("min_kwh", "max_kwh"),
                    ("min_power", "max_power"),
                    ("min_duration", "max_duration"),
                    ("min_current", "max_current"),
                    "reservation",
                ]
            },
        ),
    ]


MONTH_MINUTES = 31 * 24 * 60  # an example session is shorter than a month


class TariffPreviewForm(forms.Form):
    started_at = forms.DateTimeField(help_text="UTC, e.g. 2026-03-02 16:00")
    charging_minutes = forms.IntegerField(min_value=0, max_value=MONTH_MINUTES, initial=60)
    parking_minutes = forms.IntegerField(
        min_value=0, max_value=MONTH_MINUTES, initial=0, help_text="connected after charging ends"
    )
    energy_kwh = forms.DecimalField(min_value=0, max_digits=10, decimal_places=3, initial=Decimal("20"))
    time_zone = forms.CharField(initial="Europe/Berlin", validators=[validate_time_zone])

    def clean(self):
        data = super().clean()
        started = data.get("started_at")
        earliest, latest = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        if started is not None and not earliest <= started <= latest:
            self.add_error("started_at", "between 2000 and 2100")
        if data.get("energy_kwh") and data.get("charging_minutes") == 0:
            self.add_error("charging_minutes", "energy takes some charging time")
        return data


@admin.register(Tariff)
class TariffAdmin(DeleteRefusalOnThePage, admin.ModelAdmin):
    list_display = ["ocpi_id", "currency", "type", "min_price_excl_vat", "max_price_excl_vat", "updated_at"]
    list_filter = ["currency", "type"]
    search_fields = ["ocpi_id"]
    inlines = [TariffElementInline]
    readonly_fields = ["preview_link"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        (None, {"fields": ["ocpi_id", "currency", "type", ("country_code", "party_id"), "preview_link"]}),
        (
            "Min / max price",
            {
                "fields": [
                    ("min_price_excl_vat", "min_price_incl_vat"),
                    ("max_price_excl_vat", "max_price_incl_vat"),
                ]
            },
        ),
        ("Validity and texts", {"fields": [("start_date_time", "end_date_time"), "alt_text", "alt_url"]}),
    ]

    def save_formset(self, request, form, formset, change):
        """Elements: positions are unique per tariff and the formset saves rows one at a time, so
        swapping two positions would meet the constraint midway (a 500). Rows that move or go
        are parked above every position first, inside the admin's transaction."""
        if formset.model is TariffElement:
            parked = [
                f.instance.pk
                for f in formset.initial_forms
                if f.instance.pk and (f in formset.deleted_forms or "position" in f.changed_data)
            ]
            if parked:
                stored = TariffElement.objects.filter(tariff=form.instance).aggregate(top=Max("position"))
                wanted = [f.cleaned_data.get("position") or 0 for f in formset.forms if f.cleaned_data]
                free = max([stored["top"] or 0, *wanted]) + 1
                for offset, pk in enumerate(parked):
                    TariffElement.objects.filter(pk=pk).update(position=free + offset)
        super().save_formset(request, form, formset, change)

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [path("<int:pk>/preview/", preview, name="billing_tariff_preview"), *super().get_urls()]

    @admin.display(description="Preview")
    def preview_link(self, obj: Tariff) -> str:
        if obj.pk is None:
            return "Save first."
        return format_html(
            '<a href="{}">Price an example session</a>',
            reverse("admin:billing_tariff_preview", args=[obj.pk]),
        )

    def preview_view(self, request, pk: int):
        """Price an example session with this tariff, with the engine the CDRs use."""
        tariff = get_object_or_404(Tariff, pk=pk)
        form = TariffPreviewForm(
            request.POST or None, initial={"started_at": timezone.now().replace(second=0, microsecond=0)}
        )
        result = error = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            start = data["started_at"]
            charging_end = start + timedelta(minutes=data["charging_minutes"])
            stop = charging_end + timedelta(minutes=data["parking_minutes"])
            wh = data["energy_kwh"] * 1000
            try:
                priced = price_session(
                    tariff=tariff_from_ocpi(
                        json.loads(json.dumps(services.tariff_ocpi(tariff=tariff), default=str))
                    ),
                    started_at=start,
                    stopped_at=stop,
                    meter_start_wh=0,
                    readings=[Reading(charging_end, wh), Reading(stop, wh)],
                    time_zone=data["time_zone"],
                )
                result = priced.as_json()
            except (OcpiError, ValueError, KeyError) as exc:
                error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": tariff,
            "title": f"Price an example session with {tariff.ocpi_id}",
            "form": form,
            "result": result,
            "error": error,
        }
        return TemplateResponse(request, "admin/billing/tariff/preview.html", context)


@admin.register(TariffAssignment)
class TariffAssignmentAdmin(admin.ModelAdmin):
    list_display = ["tariff", "scope", "organization", "site", "charge_point", "connector", "updated_at"]
    list_filter = ["scope"]
    autocomplete_fields = ["tariff"]
    raw_id_fields = ["organization", "site", "charge_point", "connector"]

    def save_model(self, request, obj, form, change):
        target = {
            AssignmentScope.ORGANIZATION: obj.organization,
            AssignmentScope.CONNECTOR: obj.connector,
            AssignmentScope.CHARGE_POINT: obj.charge_point,
            AssignmentScope.SITE: obj.site,
        }.get(obj.scope)
        if change:
            obj.save()
            return
        saved = services.tariff_assign(tariff=obj.tariff, scope=obj.scope, target=target)
        obj.pk = saved.pk


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class InvoicedFilter(admin.SimpleListFilter):
    title = "on an invoice"
    parameter_name = "invoiced"

    def lookups(self, request, model_admin):
        return [
            ("yes", "Yes"),
            ("no", "No (unbilled)"),
            ("other_currency", "No: another currency than the account's"),
        ]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(invoice_line__isnull=self.value() == "no")
        if self.value() == "other_currency":  # never invoiced as things stand: operators act
            return queryset.filter(pk__in=selectors.cdrs_waiting_in_another_currency().values("pk"))
        return queryset


@admin.register(Cdr)
class CdrAdmin(ReadOnlyAdmin):
    actions = ["credit_in_full"]

    list_display = [
        "id",
        "session_id",
        "account",
        "charge_point_identity",
        "stopped_at",
        "total_energy_kwh",
        "total_incl_vat",
        "currency",
        "invoice_number",
    ]
    list_filter = [InvoicedFilter, "currency", ("stopped_at", admin.DateFieldListFilter)]
    search_fields = ["=id", "=session__id", "charge_point_identity", "id_tag", "account__name"]
    list_select_related = ["account", "invoice_line__invoice"]
    readonly_fields = ["credit_link", "pricing_pretty", "snapshot_pretty"]
    exclude = ["pricing", "snapshot"]

    @admin.display(description="credit notes")
    def credit_link(self, obj: Cdr) -> str:
        notes = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:billing_creditnote_change", args=[n.pk]), n.number)
                for n in obj.credit_notes.all()
            ),
        )
        add = reverse("admin:billing_creditnote_add") + f"?cdr={obj.pk}"
        return format_html(
            '{} <a class="addlink" href="{}">Issue a credit note</a>', notes or "none yet;", add
        )

    @admin.action(description="Issue a credit note for what is left of the CDR")
    def credit_in_full(self, request, queryset):
        for cdr in queryset.order_by("pk"):
            try:
                note = services.credit_note_create(
                    cdr=cdr, reason="credited by an operator", created_by=request.user
                )
                self.message_user(request, f"{note.number} for CDR {cdr.pk}.")
            except DomainError as error:
                self.message_user(request, f"CDR {cdr.pk}: {error.message}", messages.ERROR)

    @admin.display(description="invoice")
    def invoice_number(self, obj: Cdr) -> str:
        line = getattr(obj, "invoice_line", None)
        return line.invoice.number if line else "-"

    @admin.display(description="pricing")
    def pricing_pretty(self, obj: Cdr) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.pricing, indent=2))

    @admin.display(description="tariff snapshot")
    def snapshot_pretty(self, obj: Cdr) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.tariff_snapshot, indent=2))


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    fields = ["cdr", "total_excl_vat", "total_vat", "total_incl_vat"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class PaymentInline(admin.TabularInline):
    model = Payment
    fields = ["amount", "method", "reference", "received_at", "recorded_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class RefundInline(PaymentInline):
    model = Refund
    fields = ["amount", "method", "reference", "refunded_at", "recorded_by"]
    readonly_fields = fields


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "account",
        "period_start",
        "status",
        "total_incl_vat",
        "amount_paid",
        "currency",
        "pdf_link",
    ]
    list_filter = ["status", "currency", "account__period"]
    search_fields = ["number", "account__name"]
    list_select_related = ["account"]
    inlines = [InvoiceLineInline, PaymentInline, RefundInline]
    actions = ["mark_paid", "void", "render_pdf"]
    readonly_fields = [
        "number",
        "account",
        "status",
        "period_start",
        "period_end",
        "currency",
        "total_excl_vat",
        "total_vat",
        "total_incl_vat",
        "amount_paid",
        "amount_credited",
        "amount_due",
        "amount_refundable",
        "amount_refunded",
        "vat_breakdown",
        "issued_at",
        "paid_at",
        "voided_at",
        "pdf_link",
    ]
    exclude = ["pdf"]
    change_list_template = "admin/billing/invoice/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        run = self.admin_site.admin_view(self.run_billing_view)
        return [path("run-billing/", run, name="billing_invoice_run_billing"), *super().get_urls()]

    def run_billing_view(self, request):
        if request.method != "POST" or not self.has_change_permission(request):
            return HttpResponseRedirect(reverse("admin:billing_invoice_changelist"))
        from billing.tasks import billing_cycle_fan_out

        result = billing_cycle_fan_out.delay()
        self.message_user(request, f"Billing run queued (task {result.id}); invoices appear as it completes.")
        return HttpResponseRedirect(reverse("admin:billing_invoice_changelist"))

    @admin.display(description="PDF")
    def pdf_link(self, obj: Invoice) -> str:
        if obj.number is None:
            return "-"
        return format_html('<a href="{}">{}.pdf</a>', reverse("v1:invoice-pdf", args=[obj.pk]), obj.number)

    def _each(self, request, queryset, service, done: str) -> None:
        ok = 0
        for invoice in queryset.order_by("pk"):
            try:
                service(invoice)
                ok += 1
            except DomainError as error:
                self.message_user(request, f"{invoice}: {error.message}", messages.ERROR)
        if ok:
            self.message_user(request, f"{ok} invoice(s) {done}.")

    @admin.action(description="Mark paid (record the amount due as a payment)")
    def mark_paid(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda i: services.invoice_mark_paid(invoice=i, recorded_by=request.user),
            "marked paid",
        )

    @admin.action(description="Void")
    def void(self, request, queryset):
        self._each(request, queryset, lambda i: services.invoice_void(invoice=i), "voided")

    @admin.action(description="Render the PDF again")
    def render_pdf(self, request, queryset):
        self._each(
            request, queryset, lambda i: services.invoice_render_pdf(invoice_id=i.pk, force=True), "rendered"
        )


class _MoneyForm(forms.ModelForm):
    """Money received or paid back on an invoice: ``check`` (the service's) says why not."""

    check = None

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("invoice") and cleaned.get("amount") is not None:
            try:
                type(self).check(invoice=cleaned["invoice"], amount=cleaned["amount"])
            except DomainError as error:
                raise ValidationError(error.message) from None
        return cleaned


class PaymentForm(_MoneyForm):
    check = staticmethod(services.payment_check)

    class Meta:
        model = Payment
        fields = ["invoice", "amount", "method", "reference", "received_at"]


class RefundForm(_MoneyForm):
    check = staticmethod(services.refund_check)

    class Meta:
        model = Refund
        fields = ["invoice", "amount", "method", "reference", "refunded_at"]
        help_texts = {"amount": "at most the invoice's amount refundable (credit notes on what was paid)"}


class RefusalOnThePage:
    """A refusal the service raises while saving (under its locks, after the form's check
    passed: a double submit, a change made meanwhile) is shown on the page; nothing is saved
    (the admin's transaction is rolled back)."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as error:
            self.message_user(request, f"Not saved: {error.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class _MoneyAdmin(RefusalOnThePage, admin.ModelAdmin):
    """Added through the service (``record``), never changed or deleted."""

    search_fields = ["reference", "invoice__number"]
    raw_id_fields = ["invoice"]
    list_filter = ["method", "currency"]

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        obj.pk = self.record(form.cleaned_data, request.user).pk


@admin.register(Payment)
class PaymentAdmin(_MoneyAdmin):
    form = PaymentForm
    list_display = ["invoice", "amount", "currency", "method", "reference", "received_at"]

    def record(self, data, user):
        return services.payment_record(recorded_by=user, **data)


@admin.register(Refund)
class RefundAdmin(_MoneyAdmin):
    form = RefundForm
    list_display = ["invoice", "amount", "currency", "method", "reference", "refunded_at"]

    def record(self, data, user):
        return services.refund_record(recorded_by=user, **data)


class CreditNoteForm(forms.ModelForm):
    """Issue a credit note: a CDR, how much of it (blank: all that is left) and why."""

    amount_excl_vat = forms.DecimalField(
        max_digits=16,
        decimal_places=3,
        required=False,
        label="Amount excl. VAT",
        help_text="In the CDR's currency. Leave blank to credit all that is left of the CDR; "
        "the VAT given back is worked out per rate.",
    )

    class Meta:
        model = CreditNote
        fields = ["cdr", "amount_excl_vat", "reason"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("cdr") is not None and "amount_excl_vat" in cleaned:
            try:  # blank stays blank: the service credits what is left when it saves
                services.credit_note_check(cdr=cleaned["cdr"], amount_excl_vat=cleaned["amount_excl_vat"])
            except DomainError as error:
                left = (error.details or {}).get("remaining_excl_vat")
                raise ValidationError(f"{error.message} (left: {left})" if left else error.message) from None
        return cleaned


@admin.register(CreditNote)
class CreditNoteAdmin(RefusalOnThePage, ReadOnlyAdmin):
    list_display = [
        "number",
        "cdr",
        "invoice",
        "total_incl_vat",
        "currency",
        "reason",
        "created_at",
        "pdf_link",
    ]
    search_fields = ["number", "reason"]
    list_select_related = ["invoice"]
    raw_id_fields = ["cdr"]

    def has_add_permission(self, request, obj=None) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = CreditNoteForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["cdr", "amount_excl_vat", "reason"]
        return [
            "number",
            "cdr",
            "invoice",
            "reason",
            "currency",
            "total_excl_vat",
            "total_vat",
            "total_incl_vat",
            "vat_breakdown",
            "created_by",
            "created_at",
            "pdf_link",
        ]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        note = services.credit_note_create(
            cdr=data["cdr"],
            amount_excl_vat=data["amount_excl_vat"],
            reason=data["reason"],
            created_by=request.user,
        )
        obj.pk = note.pk
        obj.number = note.number

    @admin.display(description="PDF")
    def pdf_link(self, obj: CreditNote) -> str:
        # The API renders it on the spot if the task has not yet.
        url = reverse("v1:credit-note-pdf", args=[obj.pk])
        return format_html('<a href="{}">{}.pdf</a>', url, obj.number)


@admin.register(BillingAccount)
class BillingAccountAdmin(DeleteRefusalOnThePage, admin.ModelAdmin):
    list_display = ["name", "organization", "user", "period", "time_zone", "currency"]
    list_filter = ["period", "currency"]
    search_fields = ["name", "billing_email"]
    raw_id_fields = ["organization", "user"]
