"""Invoices keep ``amount_credited``: the credit notes of their CDRs lower what is due.

Backfill, from what the earlier code left:
- a credit note made before its CDR was invoiced never named the invoice: it names it now;
- each invoice's ``amount_credited`` is the sum of its notes, at most its total (the earlier
  code rounded each note's VAT on its own, so notes could add up to a cent or so more than the
  CDRs; such invoices are printed);
- an open or uncollectible invoice that its payments and credits now settle is ``paid``.

The check constraint is added after the backfill. On SQLite, adding a NOT NULL column and
a check constraint rebuilds ``billing_invoice``, which drops its triggers: 0009's "never
deleted" trigger is made again after (forwards and backwards), as 0010 and 0011 do.
"""

import importlib
from decimal import Decimal

from django.db import migrations, models
from django.db.models import Sum
from django.utils import timezone

NEVER_DELETED = importlib.import_module("billing.migrations.0009_invoices_never_deleted")


def never_deleted_again(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in (NEVER_DELETED.SQLITE_DROP, NEVER_DELETED.SQLITE):
            schema_editor.execute(statement, params=None)


def backfill(apps, schema_editor):
    invoice_model = apps.get_model("billing", "Invoice")
    credit_note_model = apps.get_model("billing", "CreditNote")
    line_model = apps.get_model("billing", "InvoiceLine")
    for note in credit_note_model.objects.filter(invoice__isnull=True).order_by("pk"):
        invoice_id = line_model.objects.filter(cdr_id=note.cdr_id).values_list("invoice_id", flat=True).first()
        if invoice_id is not None:
            credit_note_model.objects.filter(pk=note.pk).update(invoice_id=invoice_id)
    sums = (
        credit_note_model.objects.filter(invoice__isnull=False)
        .values("invoice_id")
        .annotate(total=Sum("total_incl_vat"))
        .order_by()
    )
    now = timezone.now()
    for row in sums:
        invoice = invoice_model.objects.get(pk=row["invoice_id"])
        if row["total"] > invoice.total_incl_vat:
            print(f"\n  invoice {invoice.number}: credit notes {row['total']} > total {invoice.total_incl_vat}")
        invoice.amount_credited = min(row["total"], invoice.total_incl_vat)
        fields = ["amount_credited"]
        settled = invoice.total_incl_vat - invoice.amount_paid - invoice.amount_credited <= 0
        if invoice.status in ("open", "uncollectible") and settled:
            invoice.status, invoice.paid_at = "paid", now
            fields += ["status", "paid_at"]
        invoice.save(update_fields=fields)


class Migration(migrations.Migration):
    dependencies = [("billing", "0014_time_zone_validated")]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, never_deleted_again),  # backwards: last
        migrations.AddField(
            model_name="invoice",
            name="amount_credited",
            field=models.DecimalField(decimal_places=3, default=Decimal("0"), max_digits=16),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.CheckConstraint(
                condition=models.Q(("amount_credited__gte", 0), ("amount_credited__lte", models.F("total_incl_vat"))),
                name="invoice_credited_within_total",
            ),
        ),
        migrations.RunPython(never_deleted_again, migrations.RunPython.noop),
    ]
