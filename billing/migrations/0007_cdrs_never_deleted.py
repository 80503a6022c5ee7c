"""CDRs can never be deleted (PostgreSQL refuses it), and invoice lines drop their foreign-key
constraint to CDRs, which that makes redundant.

The constraint cost one row lock per invoice line on its CDR at commit: a billing run over a
million CDRs rewrote every CDR page for it. Lines are made only from existing CDRs (one
``INSERT … SELECT``), their CDR stays unique, and a billed CDR can no longer disappear.
"""

import django.db.models.deletion
from django.db import migrations, models

CREATE = """
CREATE OR REPLACE FUNCTION billing_cdr_refuse_delete() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'CDR % cannot be deleted; issue a credit note instead', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_cdr_never_deleted BEFORE DELETE ON billing_cdr
    FOR EACH ROW EXECUTE FUNCTION billing_cdr_refuse_delete();
"""
DROP = """
DROP TRIGGER IF EXISTS billing_cdr_never_deleted ON billing_cdr;
DROP FUNCTION IF EXISTS billing_cdr_refuse_delete();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_cdr_vat_rate_lean_indexes")]

    operations = [
        migrations.RunPython(create, drop),
        migrations.AlterField(
            model_name="invoiceline",
            name="cdr",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="invoice_line",
                to="billing.cdr",
            ),
        ),
    ]
