"""CDRs share one tariff snapshot row per distinct tariff version instead of a copy each.

Existing CDRs are moved to content-addressed ``TariffSnapshot`` rows (SHA-256 of the canonical
JSON). CDRs are immutable (migration 0002's trigger), so the trigger is switched off for the
duration of this one move and on again in the same transaction.
"""

import hashlib
import json

import django.db.models.deletion
from django.db import migrations, models


def _digest(data) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def move_snapshots(apps, schema_editor):
    Cdr = apps.get_model("billing", "Cdr")
    TariffSnapshot = apps.get_model("billing", "TariffSnapshot")
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute("ALTER TABLE billing_cdr DISABLE TRIGGER billing_cdr_immutable")
    ids: dict[str, int] = {}
    for cdr_id, data in Cdr.objects.values_list("pk", "tariff_snapshot").iterator(chunk_size=2000):
        digest = _digest(data)
        if digest not in ids:
            ids[digest] = TariffSnapshot.objects.get_or_create(digest=digest, defaults={"data": data})[0].pk
        Cdr.objects.filter(pk=cdr_id).update(snapshot_id=ids[digest])
    if postgres:
        schema_editor.execute("ALTER TABLE billing_cdr ENABLE TRIGGER billing_cdr_immutable")
        # Check the deferred foreign keys now: the columns are altered next in this transaction.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [("billing", "0004_cdr_tariff_protect")]

    operations = [
        migrations.CreateModel(
            name="TariffSnapshot",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("digest", models.CharField(max_length=64, unique=True)),
                ("data", models.JSONField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"verbose_name": "tariff snapshot"},
        ),
        migrations.AddField(
            model_name="cdr",
            name="snapshot",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="billing.tariffsnapshot"
            ),
        ),
        migrations.RunPython(move_snapshots, migrations.RunPython.noop),
        migrations.RemoveField(model_name="cdr", name="tariff_snapshot"),
        migrations.AlterField(
            model_name="cdr",
            name="snapshot",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to="billing.tariffsnapshot"
            ),
        ),
    ]
