"""Which database errors the admin shows as a refused delete (``evcharge.core.admin``); the
refusals themselves, met through the admin, are in ``billing/tests/test_cdr_references.py``."""

import sqlite3

import pytest
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.db.utils import IntegrityError as DjangoIntegrityError

from billing.models import TariffSnapshot
from evcharge.core.admin import delete_refusal


@pytest.mark.django_db
def test_another_integrity_error_stays_an_error():
    TariffSnapshot.objects.create(digest="0" * 64, data={})
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        TariffSnapshot.objects.create(digest="0" * 64, data={})  # unique_violation, not a refused delete
    assert caught.value.__cause__.sqlstate == "23505"
    assert delete_refusal(caught.value) is None


def test_sqlite_refusals_are_recognised_by_their_text():
    """SQLite gives no SQLSTATE: the CDR triggers' refusal and a foreign key are told by the text."""
    db = sqlite3.connect(":memory:")
    db.executescript(
        "PRAGMA foreign_keys = ON;"
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id));"
        "CREATE TABLE named (id INTEGER PRIMARY KEY);"
        "CREATE TRIGGER refuse BEFORE DELETE ON named"
        " BEGIN SELECT RAISE(ABORT, 'named row cannot be deleted: a CDR names it'); END;"
        "INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1); INSERT INTO named VALUES (1);"
    )
    for statement in ("DELETE FROM parent", "DELETE FROM named", "INSERT INTO named VALUES (1)"):
        try:
            db.execute(statement)
        except sqlite3.IntegrityError as raw:
            wrapped = DjangoIntegrityError(*raw.args)  # as Django's wrapper raises it
            wrapped.__cause__ = raw
            reason = delete_refusal(wrapped)
            if statement.startswith("DELETE"):
                assert reason is not None
                assert "saved meanwhile" in reason, statement
            else:
                assert reason is None  # UNIQUE constraint failed: not a refused delete
        else:
            raise AssertionError(f"{statement} went through")


def test_djangos_own_foreign_key_check_on_sqlite_and_its_collector_are_refusals():
    """``check_constraints`` on SQLite raises its own text (no database error behind it), and the
    collector's second look raises ``ProtectedError``: both are refused deletes. A check
    constraint's failure is not."""
    checked = DjangoIntegrityError(
        "The row in table 'chargers_chargingsession' with primary key '7' has an invalid foreign key:"
        " chargers_chargingsession.connector_id contains a value '3' that does not have a"
        " corresponding value in chargers_connector.id."
    )
    assert "saved meanwhile" in delete_refusal(checked)
    protected = ProtectedError(
        "Cannot delete … referenced through protected foreign keys: 'Cdr.tariff'.", set()
    )
    assert "referenced through protected foreign keys" in delete_refusal(protected)
    assert delete_refusal(DjangoIntegrityError("CHECK constraint failed: cdr_total_not_negative")) is None
