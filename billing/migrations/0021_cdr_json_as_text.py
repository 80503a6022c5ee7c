"""A CDR's ``pricing`` (was ``json``) and ``vat_breakdown`` (was ``jsonb``) are stored as text.

Both are written once by our own code (``orjson``, or the native core held to it byte for
byte), read whole, and never queried inside except the VAT lines of CDRs with several rates,
which invoicing casts (``::json``). Checking or parsing them on every write was about a third of
PostgreSQL's CPU per CDR written by ``COPY`` (about 22 -> 15 µs; see ``JsonTextField``).
``ALTER ... TYPE`` rewrites the table once; on SQLite the columns are text either way, so only
the model state changes there (a table rebuild would drop the CDR triggers).
"""

from django.db import migrations

import billing.models

FORWARDS = (
    "ALTER TABLE billing_cdr ALTER COLUMN pricing TYPE text USING pricing::text,"
    " ALTER COLUMN vat_breakdown TYPE text USING vat_breakdown::text"
)
BACKWARDS = (
    "ALTER TABLE billing_cdr ALTER COLUMN pricing TYPE json USING pricing::json,"
    " ALTER COLUMN vat_breakdown TYPE jsonb USING vat_breakdown::jsonb"
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARDS, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARDS, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0020_cdr_references_without_row_locks")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(forwards, backwards)],
            state_operations=[
                migrations.AlterField(model_name="cdr", name="pricing", field=billing.models.JsonTextField()),
                migrations.AlterField(
                    model_name="cdr",
                    name="vat_breakdown",
                    field=billing.models.JsonTextField(
                        default=list, help_text='[{"rate", "base", "amount"}] as in pricing["vat"]'
                    ),
                ),
            ],
        )
    ]
