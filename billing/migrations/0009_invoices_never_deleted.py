"""Invoices can never be deleted (the database refuses it), and invoice lines drop their
foreign-key constraint to invoices, which that makes redundant.

An issued invoice's number must stay (the series is gapless), so no invoice is ever deleted;
corrections are credit notes and voids. The constraint cost one row lock on the invoice per
line at commit: about a quarter of a billing run over a million CDRs. Lines are made only by
the cycle's ``INSERT … SELECT`` joined to invoices of the same transaction.
"""

import django.db.models.deletion
from django.db import migrations, models

POSTGRESQL = """
CREATE FUNCTION billing_invoice_refuse_delete() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'invoice % cannot be deleted; void it or issue a credit note', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_invoice_never_deleted BEFORE DELETE ON billing_invoice
    FOR EACH ROW EXECUTE FUNCTION billing_invoice_refuse_delete();
"""
POSTGRESQL_DROP = """
DROP TRIGGER IF EXISTS billing_invoice_never_deleted ON billing_invoice;
DROP FUNCTION IF EXISTS billing_invoice_refuse_delete();
"""
SQLITE = """
CREATE TRIGGER billing_invoice_never_deleted BEFORE DELETE ON billing_invoice
BEGIN
    SELECT RAISE(ABORT, 'invoices cannot be deleted; void it or issue a credit note');
END
"""
SQLITE_DROP = "DROP TRIGGER IF EXISTS billing_invoice_never_deleted"


def create(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(POSTGRESQL if postgresql else SQLITE, params=None)


def drop(apps, schema_editor):
    postgresql = schema_editor.connection.vendor == "postgresql"
    schema_editor.execute(POSTGRESQL_DROP if postgresql else SQLITE_DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_unbilled_cdr_queue")]

    operations = [
        migrations.RunPython(create, drop),
        migrations.AlterField(
            model_name="invoiceline",
            name="invoice",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lines",
                to="billing.invoice",
            ),
        ),
    ]
