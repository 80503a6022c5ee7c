"""Billing's refusals, in the API's one error vocabulary (``evcharge.core.errors``)."""

from rest_framework import status

from evcharge.core.errors import Conflict, DomainError


class InvalidTariff(DomainError):
    code = "invalid_tariff"
    status = status.HTTP_400_BAD_REQUEST
    message = "The tariff is not valid OCPI 2.2.1."


class InvalidTransition(Conflict):
    code = "invalid_transition"
    message = "The invoice cannot make this change in its current state."


class PaymentRefused(DomainError):
    code = "payment_refused"
    status = status.HTTP_400_BAD_REQUEST
    message = "The payment cannot be recorded."


class RefundRefused(DomainError):
    code = "refund_refused"
    status = status.HTTP_400_BAD_REQUEST
    message = "The refund cannot be recorded."
