"""The unbilled-CDR queue (``UnbilledCdr``), kept by triggers, filled with today's unbilled CDRs.

Until now every billing cycle found "unbilled" as "CDRs without an invoice line": an anti-join
over every CDR ever written, hourly, growing with history. The queue holds only CDRs waiting
for an invoice. The database keeps it, so no code path can forget to:

- inserting CDRs adds those that have an account (PostgreSQL: one statement-level trigger per
  insert or ``COPY``, reading the statement's new rows; SQLite: a row trigger);
- inserting invoice lines removes their CDRs; deleting lines (nothing does today) puts their
  CDRs back.

Queue rows carry the CDR's totals and single VAT rate, and invoice lines now keep that rate
too, so invoicing reads the queue and the lines, never the (wide, scattered) CDR rows.
"""

import django.db.models.deletion
from django.db import migrations, models

POSTGRESQL = """
CREATE FUNCTION billing_unbilled_add() RETURNS trigger AS $$
BEGIN
    INSERT INTO billing_unbilledcdr (cdr_id, account_id, currency, stopped_at, total_excl_vat, total_vat, total_incl_vat, vat_rate)
    SELECT id, account_id, currency, stopped_at, total_excl_vat, total_vat, total_incl_vat, vat_rate
    FROM new_cdrs WHERE account_id IS NOT NULL;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_cdr_unbilled AFTER INSERT ON billing_cdr
    REFERENCING NEW TABLE AS new_cdrs FOR EACH STATEMENT EXECUTE FUNCTION billing_unbilled_add();

CREATE FUNCTION billing_unbilled_remove() RETURNS trigger AS $$
BEGIN
    DELETE FROM billing_unbilledcdr u USING new_lines l WHERE u.cdr_id = l.cdr_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_line_billed AFTER INSERT ON billing_invoiceline
    REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION billing_unbilled_remove();

CREATE FUNCTION billing_unbilled_restore() RETURNS trigger AS $$
BEGIN
    INSERT INTO billing_unbilledcdr (cdr_id, account_id, currency, stopped_at, total_excl_vat, total_vat, total_incl_vat, vat_rate)
    SELECT c.id, c.account_id, c.currency, c.stopped_at, c.total_excl_vat, c.total_vat, c.total_incl_vat,
           c.vat_rate
    FROM old_lines l JOIN billing_cdr c ON c.id = l.cdr_id
    WHERE c.account_id IS NOT NULL
    ON CONFLICT (cdr_id) DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_line_unbilled AFTER DELETE ON billing_invoiceline
    REFERENCING OLD TABLE AS old_lines FOR EACH STATEMENT EXECUTE FUNCTION billing_unbilled_restore();
"""
POSTGRESQL_DROP = """
DROP TRIGGER IF EXISTS billing_cdr_unbilled ON billing_cdr;
DROP TRIGGER IF EXISTS billing_line_billed ON billing_invoiceline;
DROP TRIGGER IF EXISTS billing_line_unbilled ON billing_invoiceline;
DROP FUNCTION IF EXISTS billing_unbilled_add();
DROP FUNCTION IF EXISTS billing_unbilled_remove();
DROP FUNCTION IF EXISTS billing_unbilled_restore();
"""
SQLITE = [
    """
    CREATE TRIGGER billing_cdr_unbilled AFTER INSERT ON billing_cdr WHEN NEW.account_id IS NOT NULL
    BEGIN
        INSERT INTO billing_unbilledcdr (cdr_id, account_id, currency, stopped_at, total_excl_vat, total_vat, total_incl_vat, vat_rate)
        VALUES (NEW.id, NEW.account_id, NEW.currency, NEW.stopped_at, NEW.total_excl_vat, NEW.total_vat,
                NEW.total_incl_vat, NEW.vat_rate);
    END
    """,
    """
    CREATE TRIGGER billing_line_billed AFTER INSERT ON billing_invoiceline
    BEGIN
        DELETE FROM billing_unbilledcdr WHERE cdr_id = NEW.cdr_id;
    END
    """,
    """
    CREATE TRIGGER billing_line_unbilled AFTER DELETE ON billing_invoiceline
    BEGIN
        INSERT OR IGNORE INTO billing_unbilledcdr (cdr_id, account_id, currency, stopped_at, total_excl_vat, total_vat, total_incl_vat, vat_rate)
        SELECT id, account_id, currency, stopped_at, total_excl_vat, total_vat, total_incl_vat, vat_rate
        FROM billing_cdr WHERE id = OLD.cdr_id AND account_id IS NOT NULL;
    END
    """,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS billing_cdr_unbilled",
    "DROP TRIGGER IF EXISTS billing_line_billed",
    "DROP TRIGGER IF EXISTS billing_line_unbilled",
]
BACKFILL = """
INSERT INTO billing_unbilledcdr (cdr_id, account_id, currency, stopped_at, total_excl_vat, total_vat, total_incl_vat, vat_rate)
SELECT c.id, c.account_id, c.currency, c.stopped_at, c.total_excl_vat, c.total_vat, c.total_incl_vat, c.vat_rate
FROM billing_cdr c
WHERE c.account_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM billing_invoiceline l WHERE l.cdr_id = c.id)
"""


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRESQL, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE:
            schema_editor.execute(statement, params=None)
    else:
        raise NotImplementedError(f"the unbilled-CDR triggers exist for PostgreSQL and SQLite, not {vendor}")
    schema_editor.execute(BACKFILL, params=None)


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for statement in [POSTGRESQL_DROP] if vendor == "postgresql" else SQLITE_DROP:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_cdrs_never_deleted")]

    operations = [
        migrations.CreateModel(
            name="UnbilledCdr",
            fields=[
                (
                    "cdr",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="unbilled",
                        serialize=False,
                        to="billing.cdr",
                    ),
                ),
                ("currency", models.CharField(max_length=3)),
                ("stopped_at", models.DateTimeField()),
                ("total_excl_vat", models.DecimalField(decimal_places=3, max_digits=16)),
                ("total_vat", models.DecimalField(decimal_places=3, max_digits=16)),
                ("total_incl_vat", models.DecimalField(decimal_places=3, max_digits=16)),
                ("vat_rate", models.CharField(blank=True, max_length=12, null=True)),
                (
                    "account",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="billing.billingaccount",
                    ),
                ),
            ],
            options={
                "verbose_name": "unbilled CDR",
                "indexes": [models.Index(fields=["account", "stopped_at"], name="billing_unbilled_account")],
            },
        ),
        migrations.AddField(
            model_name="invoiceline",
            name="vat_rate",
            field=models.CharField(blank=True, max_length=12, null=True),
        ),
        migrations.RunPython(create, drop),
    ]
