"""The ``incl = excl + vat`` checks of CDRs, invoices and credit notes compare a rounded sum.

SQLite (the embedded quick start) stores decimals as floats and adds floats: 0.10 + 0.02 is
0.12000000000000001 there, so the checks refused about one row in five. A CDR was then lost
without a word (the CDR write is ``INSERT OR IGNORE`` on SQLite, which skips rows a check
refuses), and a credit note or an invoice failed. ``billing.models.exact_sum`` rounds the sum
to the amounts' three places, which gives back the float the amount is stored as.

PostgreSQL adds numerics exactly: there the checks mean the same either way and the database
is left alone (no constraint is dropped or validated again on a large CDR table); only the
model state changes. On SQLite the three tables are rebuilt, which drops their triggers: the
CDR, queue and reference triggers (0010) and the invoices' "never deleted" one (0009) are
dropped first and made again after, forwards and backwards.
"""

import importlib

import django.db.models.expressions
import django.db.models.functions.math
from django.db import migrations, models
from django.db.migrations.operations.base import Operation

REFERENCES = importlib.import_module("billing.migrations.0010_cdr_references_per_statement")
NEVER_DELETED = importlib.import_module("billing.migrations.0009_invoices_never_deleted")
CHECKS = (
    ("cdr", "cdr_incl_is_excl_plus_vat"),
    ("creditnote", "credit_note_incl_is_excl_plus_vat"),
    ("invoice", "invoice_incl_is_excl_plus_vat"),
)


class OnSqliteOnly(Operation):
    """``operation`` on the model state everywhere, in the database on SQLite only."""

    reversible = True

    def __init__(self, operation):
        self.operation = operation

    def deconstruct(self):
        return (self.__class__.__name__, [self.operation], {})

    def state_forwards(self, app_label, state):
        self.operation.state_forwards(app_label, state)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "sqlite":
            self.operation.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "sqlite":
            self.operation.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self):
        return f"{self.operation.describe()} (in the database on SQLite only)"


def triggers_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        REFERENCES.drop(apps, schema_editor)
        schema_editor.execute(NEVER_DELETED.SQLITE_DROP, params=None)


def triggers_create(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        REFERENCES.create(apps, schema_editor)
        for statement in (NEVER_DELETED.SQLITE_DROP, NEVER_DELETED.SQLITE):
            schema_editor.execute(statement, params=None)


def _rounded_sum_check(name: str):
    total = django.db.models.expressions.CombinedExpression(
        models.F("total_excl_vat"), "+", models.F("total_vat")
    )
    rounded = django.db.models.functions.math.Round(total, 3)
    return models.CheckConstraint(condition=models.Q(("total_incl_vat", rounded)), name=name)


class Migration(migrations.Migration):
    dependencies = [("billing", "0018_refunds")]

    operations = [
        migrations.RunPython(triggers_drop, triggers_create),
        *(
            operation
            for model, name in CHECKS
            for operation in (
                OnSqliteOnly(migrations.RemoveConstraint(model_name=model, name=name)),
                OnSqliteOnly(migrations.AddConstraint(model_name=model, constraint=_rounded_sum_check(name))),
            )
        ),
        migrations.RunPython(triggers_create, triggers_drop),
    ]
