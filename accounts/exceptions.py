from rest_framework import status

from evcharge.core.errors import Conflict, DomainError


class Forbidden(DomainError):
    """The caller sees the object but may not do this to it."""

    code = "forbidden"
    status = status.HTTP_403_FORBIDDEN
    message = "You may not do this."


class InvalidInput(DomainError):
    code = "validation_error"
    status = status.HTTP_400_BAD_REQUEST
    message = "Invalid input."


class IdTokenExists(Conflict):
    code = "id_token_exists"
    message = "An ID token with this idTag exists."


class InvalidTransition(Conflict):
    code = "invalid_transition"
    message = "The object is not in a state that allows this."


class LastOwner(Conflict):
    code = "last_owner"
    message = "An organization keeps at least one owner."
