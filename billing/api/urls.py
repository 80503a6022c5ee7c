from django.urls import path
from rest_framework.routers import SimpleRouter

from billing.api.views import (
    BillingAccountViewSet,
    BillingRunView,
    CdrViewSet,
    CreditNoteViewSet,
    InvoiceViewSet,
    PaymentViewSet,
    TariffAssignmentViewSet,
    TariffViewSet,
)

router = SimpleRouter()
router.register("tariffs", TariffViewSet, basename="tariff")
router.register("tariff-assignments", TariffAssignmentViewSet, basename="tariff-assignment")
router.register("cdrs", CdrViewSet, basename="cdr")
router.register("billing-accounts", BillingAccountViewSet, basename="billing-account")
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("payments", PaymentViewSet, basename="payment")
router.register("credit-notes", CreditNoteViewSet, basename="credit-note")

urlpatterns = [
    path("billing-runs/", BillingRunView.as_view(), name="billing-run"),
    *router.urls,
]
