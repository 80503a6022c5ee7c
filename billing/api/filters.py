import django_filters

from billing.choices import InvoiceStatus
from billing.models import Cdr, Invoice, Payment


class CdrFilter(django_filters.FilterSet):
    stopped_after = django_filters.IsoDateTimeFilter(field_name="stopped_at", lookup_expr="gte")
    stopped_before = django_filters.IsoDateTimeFilter(field_name="stopped_at", lookup_expr="lt")
    invoiced = django_filters.BooleanFilter(field_name="invoice_line", lookup_expr="isnull", exclude=True)

    class Meta:
        model = Cdr
        fields = ["account", "session", "currency", "charge_point_identity", "id_tag"]


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=InvoiceStatus.choices)
    period_from = django_filters.IsoDateTimeFilter(field_name="period_start", lookup_expr="gte")
    period_to = django_filters.IsoDateTimeFilter(field_name="period_end", lookup_expr="lte")

    class Meta:
        model = Invoice
        fields = ["account", "number", "currency"]


class PaymentFilter(django_filters.FilterSet):
    class Meta:
        model = Payment
        fields = ["invoice", "method"]
