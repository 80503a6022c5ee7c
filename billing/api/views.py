"""Billing API: thin views over ``billing.services`` and ``billing.selectors``.

Reads are scoped by ``accounts.scoping`` (``ScopedQuerysetMixin``: another tenant's row is a
404); writes (tariffs, assignments, payments, credit notes, invoice state changes, billing
runs) are for operators. API keys need the ``billing:read`` / ``billing:write`` scopes.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.audit import audit_snapshot, audited
from accounts.permissions import OPERATOR_ONLY, READ_OR_OPERATOR
from accounts.scoping import ScopedQuerysetMixin, actor_for_request, scope_queryset
from accounts.services import audit_record
from billing import services
from billing.api.filters import CdrFilter, InvoiceFilter, PaymentFilter
from billing.api.serializers import (
    BillingAccountSerializer,
    BillingRunSerializer,
    CdrSerializer,
    CreditNoteInputSerializer,
    CreditNoteSerializer,
    InvoiceSerializer,
    OcpiTariffSerializer,
    PaymentInputSerializer,
    PaymentSerializer,
    RefundInputSerializer,
    RefundSerializer,
    TariffAssignmentInputSerializer,
    TariffAssignmentSerializer,
)
from billing.choices import AssignmentScope
from billing.models import (
    BillingAccount,
    Cdr,
    CreditNote,
    Invoice,
    InvoiceLine,
    Payment,
    Tariff,
    TariffAssignment,
    TariffElement,
)
from evcharge.core.errors import Conflict, NotFound


class DecimalJSONParser(JSONParser):
    """JSON numbers with a fraction become Decimal, never float (prices must stay exact)."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", "utf-8")
        try:
            return json.loads(stream.read().decode(encoding), parse_float=Decimal)
        except (ValueError, RecursionError) as error:  # RecursionError: nested beyond any tariff
            from rest_framework.exceptions import ParseError

            raise ParseError(f"JSON parse error - {error}") from None


# --- tariffs -----------------------------------------------------------------------------


@extend_schema(tags=["billing"])
class TariffViewSet(
    ScopedQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """OCPI 2.2.1 tariffs. ``POST`` creates; ``PUT /tariffs/<id>/`` creates or replaces (OCPI semantics)."""

    serializer_class = OcpiTariffSerializer
    permission_classes = READ_OR_OPERATOR
    parser_classes = [DecimalJSONParser]
    lookup_field = "ocpi_id"
    lookup_url_kwarg = "tariff_id"
    lookup_value_regex = r"[A-Za-z0-9._-]{1,36}"
    http_method_names = ["get", "post", "put", "head", "options"]
    ordering_fields = ["ocpi_id", "updated_at"]
    filterset_fields = ["currency"]

    queryset = Tariff.objects.prefetch_related(
        Prefetch("elements", queryset=TariffElement.objects.order_by("position"))
    ).order_by("ocpi_id")
    api_area = "billing"

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        exists = Conflict("a tariff with this id exists; PUT it to replace it", code="tariff_exists")
        if Tariff.objects.filter(ocpi_id=serializer.validated_data["id"]).exists():
            raise exists
        try:
            with transaction.atomic():
                tariff = services.tariff_save_ocpi(data=self._ocpi(request.data, serializer))
                _audit_created(self.actor, "tariff.create", tariff)
        except IntegrityError:  # the same id created by a concurrent request since the check
            raise exists from None
        return Response(self.get_serializer(tariff).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=OcpiTariffSerializer, responses={200: OcpiTariffSerializer, 201: OcpiTariffSerializer}
    )
    def update(self, request, tariff_id: str, *args, **kwargs):
        data = dict(request.data) if isinstance(request.data, dict) else request.data
        if isinstance(data, dict):
            data.setdefault("id", tariff_id)
        serializer = self.get_serializer(data=data)
        serializer.is_valid(raise_exception=True)
        if serializer.validated_data["id"] != tariff_id:
            raise Conflict("the body's id differs from the URL's", code="id_mismatch")
        existing = Tariff.objects.filter(ocpi_id=tariff_id).first()
        try:
            with transaction.atomic():
                if existing is None:
                    tariff = services.tariff_save_ocpi(data=self._ocpi(data, serializer))
                    _audit_created(self.actor, "tariff.create", tariff)
                else:
                    with audited(actor=self.actor, action="tariff.update", obj=existing, source="api"):
                        tariff = services.tariff_save_ocpi(data=self._ocpi(data, serializer), tariff=existing)
        except IntegrityError:  # created by a concurrent request since we looked: nothing written
            raise Conflict(
                "this tariff was created meanwhile; send the PUT again", code="tariff_exists"
            ) from None
        tariff = self.get_queryset().get(pk=tariff.pk)
        return Response(
            self.get_serializer(tariff).data,
            status=status.HTTP_200_OK if existing else status.HTTP_201_CREATED,
        )

    @staticmethod
    def _ocpi(raw: dict, serializer) -> dict:
        # Elements and prices as sent (Decimal numbers); the rest as validated.
        data = {**serializer.validated_data, "elements": raw["elements"]}
        for name in ("min_price", "max_price"):
            if name in raw:
                data[name] = raw[name]
        return data


@extend_schema(tags=["billing"])
class TariffAssignmentViewSet(
    ScopedQuerysetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Which tariff applies where: ``POST {"tariff", "scope", "target_id"}`` replaces the target's tariff."""

    serializer_class = TariffAssignmentSerializer
    permission_classes = OPERATOR_ONLY
    filterset_fields = ["scope", "tariff"]
    queryset = TariffAssignment.objects.select_related("tariff").order_by("scope", "pk")
    api_area = "billing"

    @extend_schema(request=TariffAssignmentInputSerializer, responses={201: TariffAssignmentSerializer})
    def create(self, request):
        from accounts.models import Organization
        from chargers.models import ChargePoint, Connector, Site

        data = TariffAssignmentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        tariff = Tariff.objects.filter(ocpi_id=values["tariff"]).first()
        if tariff is None:
            raise NotFound("no tariff with this id", details={"tariff": values["tariff"]})
        model = {
            AssignmentScope.ORGANIZATION: Organization,
            AssignmentScope.CONNECTOR: Connector,
            AssignmentScope.CHARGE_POINT: ChargePoint,
            AssignmentScope.SITE: Site,
        }.get(values["scope"])
        target = None
        if model is not None:
            target = model.objects.filter(pk=values.get("target_id")).first()
            if target is None:
                raise NotFound(
                    f"no {values['scope']} with this id", details={"target_id": values.get("target_id")}
                )
        with transaction.atomic():
            assignment = services.tariff_assign(tariff=tariff, scope=values["scope"], target=target)
            _audit_created(self.actor, "tariff.assign", assignment)
        return Response(self.get_serializer(assignment).data, status=status.HTTP_201_CREATED)


def _audit_created(actor, action: str, obj) -> None:
    """A row the API just made, in the audit log with its state (inside the same transaction)."""
    audit_record(actor=actor, action=action, obj=obj, after=audit_snapshot(obj), source="api")


# --- CDRs, accounts, invoices, payments --------------------------------------------------


@extend_schema(tags=["billing"])
class CdrViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Cdr.objects.select_related("invoice_line__invoice", "snapshot").order_by("-stopped_at", "-pk")
    api_area = "billing"
    serializer_class = CdrSerializer
    filterset_class = CdrFilter
    ordering_fields = ["stopped_at", "total_incl_vat", "id"]


@extend_schema(tags=["billing"])
class BillingAccountViewSet(ScopedQuerysetMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Billing accounts; operators change period, time zone and currency (``PATCH``)."""

    queryset = BillingAccount.objects.order_by("pk")
    api_area = "billing"
    serializer_class = BillingAccountSerializer
    permission_classes = READ_OR_OPERATOR
    filterset_fields = ["period", "currency", "organization", "user"]
    http_method_names = ["get", "patch", "head", "options"]


@extend_schema(tags=["billing"])
class InvoiceViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Invoice.objects.prefetch_related(
        Prefetch("lines", queryset=InvoiceLine.objects.only("invoice_id", "cdr_id"))
    ).order_by("-period_start", "-pk")
    api_area = "billing"
    serializer_class = InvoiceSerializer
    filterset_class = InvoiceFilter
    ordering_fields = ["period_start", "issued_at", "number", "total_incl_vat"]

    @extend_schema(responses={(200, "application/pdf"): OpenApiResponse(description="the invoice PDF")})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        invoice = self.get_object()
        if invoice.number is None:
            raise Conflict("a draft invoice has no PDF", code="invoice_not_issued")
        if not invoice.pdf:
            # The task renders it right after issue; render now if it has not run yet.
            invoice = services.invoice_render_pdf(invoice_id=invoice.pk)
        return _pdf_response(invoice)

    @extend_schema(request=PaymentInputSerializer, responses={201: PaymentSerializer})
    @action(detail=True, methods=["get", "post"], permission_classes=READ_OR_OPERATOR)
    def payments(self, request, pk=None):
        return self._money(
            request, "payments", PaymentSerializer, PaymentInputSerializer, services.payment_record
        )

    @extend_schema(request=RefundInputSerializer, responses={201: RefundSerializer})
    @action(detail=True, methods=["get", "post"], permission_classes=READ_OR_OPERATOR)
    def refunds(self, request, pk=None):
        """Money paid back of what the invoice owes back (``amount_refundable``)."""
        return self._money(
            request, "refunds", RefundSerializer, RefundInputSerializer, services.refund_record
        )

    def _money(self, request, kind: str, serializer, input_serializer, record) -> Response:
        """GET: the invoice's payments or refunds; POST: record one (operators)."""
        invoice = self.get_object()
        if request.method == "GET":
            rows = getattr(invoice, kind).all()  # newest first (the models' ordering)
            return Response(serializer(rows, many=True).data)
        data = input_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        action = f"invoice.{kind.removesuffix('s')}"
        with transaction.atomic(), audited(actor=self.actor, action=action, obj=invoice, source="api"):
            row = record(invoice=invoice, recorded_by=request.user, **data.validated_data)
        return Response(serializer(row).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: InvoiceSerializer})
    @action(detail=True, methods=["post"], permission_classes=OPERATOR_ONLY)
    def void(self, request, pk=None):
        invoice = self.get_object()
        with (
            transaction.atomic(),
            audited(actor=self.actor, action="invoice.void", obj=invoice, source="api"),
        ):
            invoice = services.invoice_void(invoice=invoice)
        return Response(self.get_serializer(self.get_queryset().get(pk=invoice.pk)).data)

    @extend_schema(request=None, responses={200: InvoiceSerializer})
    @action(detail=True, methods=["post"], url_path="mark-uncollectible", permission_classes=OPERATOR_ONLY)
    def mark_uncollectible(self, request, pk=None):
        invoice = self.get_object()
        with (
            transaction.atomic(),
            audited(actor=self.actor, action="invoice.mark_uncollectible", obj=invoice, source="api"),
        ):
            invoice = services.invoice_mark_uncollectible(invoice=invoice)
        return Response(self.get_serializer(self.get_queryset().get(pk=invoice.pk)).data)


@extend_schema(tags=["billing"])
class PaymentViewSet(ScopedQuerysetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Payment.objects.order_by("-received_at", "-pk")
    api_area = "billing"
    serializer_class = PaymentSerializer
    filterset_class = PaymentFilter


@extend_schema(tags=["billing"])
class CreditNoteViewSet(ScopedQuerysetMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = CreditNote.objects.order_by("-created_at", "-pk")
    api_area = "billing"
    serializer_class = CreditNoteSerializer
    permission_classes = READ_OR_OPERATOR
    filterset_fields = ["cdr", "invoice"]

    @extend_schema(request=CreditNoteInputSerializer, responses={201: CreditNoteSerializer})
    def create(self, request):
        data = CreditNoteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        cdr = get_object_or_404(scope_queryset(Cdr.objects.all(), self.actor), pk=values["cdr"])
        with transaction.atomic():
            note = services.credit_note_create(
                cdr=cdr,
                amount_excl_vat=values.get("amount_excl_vat"),
                reason=values["reason"],
                created_by=request.user,
            )
            _audit_created(self.actor, "credit_note.create", note)
        return Response(self.get_serializer(note).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "application/pdf"): OpenApiResponse(description="the credit note PDF")})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        note = self.get_object()
        if not note.pdf:  # the task renders it once the note commits; now if it has not run yet
            note = services.credit_note_render_pdf(credit_note_id=note.pk)
        return _pdf_response(note)


def _pdf_response(document) -> FileResponse:
    return FileResponse(
        document.pdf.open("rb"), content_type="application/pdf", filename=f"{document.number}.pdf"
    )


@extend_schema(tags=["billing"], request=None, responses={202: BillingRunSerializer})
class BillingRunView(APIView):
    """Run the billing cycle now (operators): closes ended periods, as the hourly beat task does."""

    permission_classes = OPERATOR_ONLY
    api_area = "billing"

    def post(self, request):
        from billing.tasks import billing_cycle_fan_out

        result = billing_cycle_fan_out.delay()
        audit_record(
            actor=actor_for_request(request),
            action="billing.run",
            obj=None,
            after={"task_id": result.id},
            source="api",
        )
        return Response({"task_id": result.id}, status=status.HTTP_202_ACCEPTED)
