"""Invoices keep ``amount_credited``: the credit notes of their CDRs lower what is due.

Backfilled from the credit notes that name an invoice. On SQLite, adding a NOT NULL column and
a check constraint rebuilds ``billing_invoice``, which drops its triggers: 0009's "never
deleted" trigger is made again after (forwards and backwards), as 0010 and 0011 do.
"""

import importlib
from decimal import Decimal

from django.db import migrations, models
from django.db.models import Sum

NEVER_DELETED = importlib.import_module("billing.migrations.0009_invoices_never_deleted")


def never_deleted_again(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in (NEVER_DELETED.SQLITE_DROP, NEVER_DELETED.SQLITE):
            schema_editor.execute(statement, params=None)


def backfill(apps, schema_editor):
    invoice_model = apps.get_model("billing", "Invoice")
    credit_note_model = apps.get_model("billing", "CreditNote")
    sums = (
        credit_note_model.objects.filter(invoice__isnull=False)
        .values("invoice_id")
        .annotate(total=Sum("total_incl_vat"))
        .order_by()
    )
    for row in sums:
        invoice_model.objects.filter(pk=row["invoice_id"]).update(amount_credited=row["total"])


class Migration(migrations.Migration):
    dependencies = [("billing", "0014_time_zone_validated")]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, never_deleted_again),  # backwards: last
        migrations.AddField(
            model_name="invoice",
            name="amount_credited",
            field=models.DecimalField(decimal_places=3, default=Decimal("0"), max_digits=16),
        ),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.CheckConstraint(
                condition=models.Q(("amount_credited__gte", 0), ("amount_credited__lte", models.F("total_incl_vat"))),
                name="invoice_credited_within_total",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(never_deleted_again, migrations.RunPython.noop),
    ]
