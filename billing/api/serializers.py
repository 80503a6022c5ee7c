"""Billing API shapes. Money is ``{"amount": "<decimal string>", "currency": "EUR"}``.

Tariffs go in and out as OCPI 2.2.1 tariff JSON (numbers as JSON numbers, as OCPI has them).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.choices import AssignmentScope, PaymentMethod
from billing.models import BillingAccount, Cdr, CreditNote, Invoice, Payment, Refund, TariffAssignment
from billing.services import tariff_ocpi
from evcharge.core.money import round_half_up

OCPI_TARIFF_TYPES = ("AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR")


@extend_schema_field(
    {
        "type": "object",
        "properties": {"amount": {"type": "string", "example": "7.96"}, "currency": {"type": "string"}},
    }
)
class MoneyField(serializers.Field):
    """A read-only amount column of the row, with the row's currency, to the currency's minor unit."""

    def __init__(self, amount: str, **kwargs):
        self.amount = amount
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, obj) -> dict[str, str]:
        value: Decimal = getattr(obj, self.amount)
        return {"amount": str(round_half_up(value, obj.currency)), "currency": obj.currency}


# --- tariffs -----------------------------------------------------------------------------


class OcpiTariffSerializer(serializers.Serializer):
    """OCPI 2.2.1 Tariff. Elements are validated in depth by ``billing.ocpi.tariff_from_ocpi``."""

    country_code = serializers.RegexField(r"^[A-Z]{2}$", required=False)
    party_id = serializers.RegexField(r"^[A-Z0-9]{3}$", required=False)
    id = serializers.RegexField(r"^[A-Za-z0-9._-]{1,36}$")
    currency = serializers.CharField(max_length=3)
    type = serializers.ChoiceField(choices=OCPI_TARIFF_TYPES, required=False)
    tariff_alt_text = serializers.ListField(child=serializers.DictField(), required=False)
    tariff_alt_url = serializers.URLField(required=False, max_length=200)  # the column's length
    min_price = serializers.DictField(required=False)
    max_price = serializers.DictField(required=False)
    elements = serializers.ListField(child=serializers.DictField(), min_length=1)
    start_date_time = serializers.DateTimeField(required=False)
    end_date_time = serializers.DateTimeField(required=False)
    last_updated = serializers.DateTimeField(required=False, help_text="ignored on input; set by the server")

    def validate(self, attrs):
        start, end = attrs.get("start_date_time"), attrs.get("end_date_time")
        if start is not None and end is not None and start >= end:  # it would never apply
            raise serializers.ValidationError({"end_date_time": ["must be after start_date_time"]})
        return attrs

    def to_representation(self, instance) -> dict[str, Any]:
        return tariff_ocpi(tariff=instance)


class TariffAssignmentSerializer(serializers.ModelSerializer):
    tariff = serializers.SlugRelatedField(slug_field="ocpi_id", read_only=True)
    target_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = TariffAssignment
        fields = ["id", "tariff", "scope", "target_id", "created_at", "updated_at"]


class TariffAssignmentInputSerializer(serializers.Serializer):
    tariff = serializers.CharField(max_length=36, help_text="OCPI id of the tariff")
    scope = serializers.ChoiceField(choices=AssignmentScope.choices)
    target_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="organization, connector, charger or site id; none for default",
    )


# --- CDRs, accounts, invoices ------------------------------------------------------------


class BillingAccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = BillingAccount
        fields = ["id", "name", "organization", "user", "period", "time_zone", "currency", "billing_email"]
        read_only_fields = ["organization", "user"]


class CdrSerializer(serializers.ModelSerializer):
    session = serializers.IntegerField(source="session_id", read_only=True)
    tariff = serializers.CharField(source="snapshot.data.id", read_only=True, default=None)
    invoice = serializers.SerializerMethodField()
    total_excl_vat = MoneyField("total_excl_vat")
    total_vat = MoneyField("total_vat")
    total_incl_vat = MoneyField("total_incl_vat")
    charging_periods = serializers.JSONField(source="pricing.charging_periods", read_only=True)
    vat = serializers.JSONField(source="pricing.vat", read_only=True)
    tariff_snapshot = serializers.JSONField(source="snapshot.data", read_only=True)

    class Meta:
        model = Cdr
        fields = [
            "id",
            "session",
            "account",
            "charge_point_identity",
            "connector_id",
            "id_tag",
            "started_at",
            "stopped_at",
            "total_energy_kwh",
            "total_time_hours",
            "total_parking_time_hours",
            "currency",
            "total_excl_vat",
            "total_vat",
            "total_incl_vat",
            "vat",
            "charging_periods",
            "tariff",
            "tariff_snapshot",
            "invoice",
            "created_at",
        ]

    @extend_schema_field(OpenApiTypes.STR)
    def get_invoice(self, cdr: Cdr) -> str | None:
        line = getattr(cdr, "invoice_line", None)
        return line.invoice.number if line is not None else None


class InvoiceSerializer(serializers.ModelSerializer):
    total_excl_vat = MoneyField("total_excl_vat")
    total_vat = MoneyField("total_vat")
    total_incl_vat = MoneyField("total_incl_vat")
    amount_paid = MoneyField("amount_paid")
    amount_credited = MoneyField("amount_credited")
    amount_refunded = MoneyField("amount_refunded")
    amount_due = MoneyField("amount_due")
    amount_refundable = MoneyField("amount_refundable")
    cdrs = serializers.SerializerMethodField()
    pdf_url = serializers.SerializerMethodField()

    class Meta:
        model = Invoice
        fields = [
            "id",
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
            "cdrs",
            "pdf_url",
        ]

    def get_cdrs(self, invoice: Invoice) -> list[int]:
        return [line.cdr_id for line in invoice.lines.all()]

    @extend_schema_field(OpenApiTypes.URI)
    def get_pdf_url(self, invoice: Invoice) -> str | None:
        if invoice.number is None:
            return None
        return _absolute(self.context.get("request"), f"/api/v1/invoices/{invoice.pk}/pdf/")


def _absolute(request, path: str) -> str:
    return request.build_absolute_uri(path) if request else path


class PaymentSerializer(serializers.ModelSerializer):
    amount = MoneyField("amount")

    class Meta:
        model = Payment
        fields = ["id", "invoice", "amount", "method", "reference", "received_at", "created_at"]


class RefundSerializer(serializers.ModelSerializer):
    amount = MoneyField("amount")

    class Meta:
        model = Refund
        fields = ["id", "invoice", "amount", "method", "reference", "refunded_at", "created_at"]


class RefundInputSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=16, decimal_places=3, min_value=Decimal("0.001"))
    reference = serializers.CharField(max_length=100)
    method = serializers.ChoiceField(choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER)
    refunded_at = serializers.DateTimeField(required=False)


class PaymentInputSerializer(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=16, decimal_places=3, min_value=Decimal("0.001"))
    reference = serializers.CharField(max_length=100)
    method = serializers.ChoiceField(choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER)
    received_at = serializers.DateTimeField(required=False)


class CreditNoteSerializer(serializers.ModelSerializer):
    total_excl_vat = MoneyField("total_excl_vat")
    total_vat = MoneyField("total_vat")
    total_incl_vat = MoneyField("total_incl_vat")
    pdf_url = serializers.SerializerMethodField()

    class Meta:
        model = CreditNote
        fields = [
            "id",
            "number",
            "cdr",
            "invoice",
            "reason",
            "currency",
            "total_excl_vat",
            "total_vat",
            "total_incl_vat",
            "vat_breakdown",
            "created_at",
            "pdf_url",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_pdf_url(self, note: CreditNote) -> str:
        return _absolute(self.context.get("request"), f"/api/v1/credit-notes/{note.pk}/pdf/")


class CreditNoteInputSerializer(serializers.Serializer):
    cdr = serializers.IntegerField()
    amount_excl_vat = serializers.DecimalField(
        max_digits=16, decimal_places=3, required=False, help_text="omit to credit what is left of the CDR"
    )
    reason = serializers.CharField(max_length=255)


class BillingRunSerializer(serializers.Serializer):
    task_id = serializers.CharField(read_only=True)
