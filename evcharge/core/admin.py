"""Back-office pieces every app's admin uses."""

from django.contrib import messages
from django.db import DatabaseError, IntegrityError, router, transaction
from django.http import HttpResponseRedirect

# PostgreSQL's SQLSTATEs for a delete it refused: a row came to need the one being deleted, or
# the delete could not have its locks (waited too long, or a deadlock).
_IN_USE = {"23503", "23001"}  # foreign_key_violation (also the CDR triggers'), restrict_violation
_BUSY = {"55P03", "40P01"}  # lock_not_available (the CDR triggers' wait), deadlock_detected


def delete_refusal(error: DatabaseError) -> str | None:
    """Why the database refused a delete that the admin's own check let through, as an operator
    reads it; None for any other error (which stays an error).

    The admin looks for what refers to a row before it deletes it, but a new row can refer to it
    between that look and the delete: a charger's new session, or a CDR priced with a tariff
    (the CDR triggers, billing migrations 0010 and 0020). The database then refuses the delete.
    A delete of a row CDRs could name also takes the CDR table first, which a vacuum of it or a
    long CDR write can hold for longer than the few seconds it waits; and a delete that cascades
    can meet such a write in a deadlock, which PostgreSQL ends by refusing one of the two."""
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    said = getattr(getattr(cause, "diag", None), "message_primary", None) or str(error)
    if sqlstate in _BUSY:
        return f"the database is busy with what refers to it; try again in a minute ({said})"
    in_use = sqlstate in _IN_USE or (
        sqlstate is None  # SQLite: a foreign key, or a trigger's refusal
        and isinstance(error, IntegrityError)
        and ("FOREIGN KEY" in said or "cannot be deleted" in said)
    )
    return f"something that refers to it was saved meanwhile ({said})" if in_use else None


class DeleteRefusalOnThePage:
    """A delete the database refuses (see :func:`delete_refusal`) is shown on the page it was
    asked from, and nothing is deleted: the admin's transaction, with its log entry, is rolled
    back. Without this, the operator got a server error page. Mix in before ``ModelAdmin``."""

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except DatabaseError as error:
            reason = delete_refusal(error)
            if reason is None:
                raise
        self.message_user(request, f"Not deleted: {reason}.", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def response_action(self, request, queryset):
        """The "delete selected" action, in one transaction (Django runs it without one): all of
        them go, with their audit entries, or none does."""
        if request.POST.get("action") != "delete_selected":
            return super().response_action(request, queryset)
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):
                return super().response_action(request, queryset)
        except DatabaseError as error:
            reason = delete_refusal(error)
            if reason is None:
                raise
        self.message_user(request, f"None of them was deleted: {reason}.", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())
