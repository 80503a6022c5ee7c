"""An invoice line's primary key is its CDR: the surrogate ``id`` goes.

A line is a CDR's one place on an invoice (its CDR was unique already), so ``cdr_id`` is the
key. The billing cycle writes one line per CDR; without the ``id`` index each line costs one
index entry fewer (1M lines of this shape: 8.3 s → 6.0 s to insert).

On PostgreSQL the primary key index is built in this migration (about a second per million
lines; the table is locked meanwhile, which delays a billing cycle, nothing else). On SQLite
the table is rebuilt, which drops its triggers: 0008's queue triggers are made again after
(forwards and backwards), as 0010 explains.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models

QUEUE = importlib.import_module("billing.migrations.0008_unbilled_cdr_queue")


def queue_triggers_again(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in [*QUEUE.SQLITE_DROP, *QUEUE.SQLITE]:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0010_cdr_references_per_statement")]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, queue_triggers_again),  # backwards: last
        migrations.AlterModelOptions(name="invoiceline", options={"ordering": ["invoice_id", "cdr_id"]}),
        migrations.RemoveField(model_name="invoiceline", name="id"),
        migrations.AlterField(
            model_name="invoiceline",
            name="cdr",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                primary_key=True,
                related_name="invoice_line",
                serialize=False,
                to="billing.cdr",
            ),
        ),
        migrations.RunPython(queue_triggers_again, migrations.RunPython.noop),
    ]
