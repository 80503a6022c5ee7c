"""Back-office pieces every app's admin uses."""

from django.contrib import messages
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.db.models import ProtectedError, RestrictedError
from django.http import HttpResponseRedirect

# PostgreSQL's SQLSTATEs for a delete it refused: a row came to need the one being deleted, or
# the delete could not have its locks (waited too long, or a deadlock).
_IN_USE = {"23503"}  # foreign_key_violation: a foreign key at commit, or the CDR triggers
_BUSY = {"55P03", "40P01"}  # lock_not_available (the CDR triggers' wait), deadlock_detected
# SQLite (the quick start) has no SQLSTATE: its foreign key failing at commit, Django's check of
# the foreign keys (``check_constraints``), the CDR triggers' refusal (billing migration 0010).
_SQLITE_IN_USE = ("FOREIGN KEY constraint failed", "has an invalid foreign key", "a CDR names it")


def delete_refusal(error: DatabaseError) -> str | None:
    """Why a delete that the admin's own check let through was refused, as an operator reads it;
    None for any other error (which stays an error).

    The admin looks for what refers to a row before it deletes it, but a new row can refer to it
    between that look and the delete: a charger's new session, or a CDR priced with a tariff.
    Django's own second look then refuses the delete (``ProtectedError``), or the database does:
    a foreign key when the transaction's constraints are checked, or the CDR triggers (billing
    migrations 0010 and 0020). A delete of a row CDRs could name also takes the CDR table
    first, which a vacuum of it or a long CDR write can hold for longer than the few seconds it
    waits; and a delete that cascades can meet such a write in a deadlock, which PostgreSQL
    ends by refusing one of the two."""
    if isinstance(error, ProtectedError | RestrictedError):
        return f"something that refers to it was saved meanwhile ({error.args[0]})"
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    said = getattr(getattr(cause, "diag", None), "message_primary", None) or str(error)
    if sqlstate in _BUSY:
        said = said.removesuffix("; try again")  # the CDR triggers' text ends so; said once below
        return f"the database was busy with what refers to it ({said}); try again in a minute"
    in_use = sqlstate in _IN_USE or (
        sqlstate is None
        and isinstance(error, IntegrityError)
        and any(text in said for text in _SQLITE_IN_USE)
    )
    return f"something that refers to it was saved meanwhile ({said})" if in_use else None


class DeleteRefusalOnThePage:
    """A refused delete (see :func:`delete_refusal`) is shown on the page it was asked from, and
    nothing is deleted: the admin's transaction, with its log and audit entries, is rolled back.
    Without this, the operator got a server error page. Mix in before ``ModelAdmin``."""

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        self._check_constraints()

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        self._check_constraints()

    def _check_constraints(self) -> None:
        """Django's foreign keys are checked at commit, after the admin has said "deleted
        successfully": check them now, so that a refusal comes before that message. (PostgreSQL
        checks what this transaction left pending; SQLite, the small quick-start database, every
        table's foreign keys.)"""
        connections[router.db_for_write(self.model)].check_constraints()

    def delete_view(self, request, object_id, extra_context=None):
        view = super().delete_view
        return self._refusal_shown(request, "Not deleted", lambda: view(request, object_id, extra_context))

    def response_action(self, request, queryset):
        """The confirmed "delete selected" action, in one transaction (Django runs it without
        one): all of them go, with their audit entries, or none does."""
        action = super().response_action
        if request.POST.get("action") != "delete_selected" or not request.POST.get("post"):
            return action(request, queryset)

        def in_one_transaction():
            with transaction.atomic(using=router.db_for_write(self.model)):
                return action(request, queryset)

        return self._refusal_shown(request, "None of them was deleted", in_one_transaction)

    def _refusal_shown(self, request, headline: str, attempt):
        """``attempt()``'s response, or, when it was a refused delete, the page it was asked from
        with the reason."""
        try:
            return attempt()
        except DatabaseError as error:  # ProtectedError and RestrictedError are IntegrityErrors
            reason = delete_refusal(error)
            if reason is None:
                raise
        self.message_user(request, f"{headline}: {reason}.", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())
