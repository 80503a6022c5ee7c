"""An index on finished sessions' stop time, for the CDR sweep's 48-hour window.

Built ``CONCURRENTLY`` on PostgreSQL: the sessions table is written on every charger stop, and
a plain ``CREATE INDEX`` would hold those writes for as long as the build takes on a large
table. (SQLite, the embedded quick start, builds it the ordinary way.)
"""

from django.db import migrations, models

INDEX = models.Index(
    condition=models.Q(("stopped_at__isnull", False)), fields=["stopped_at"], name="chargers_session_stopped"
)


def create(apps, schema_editor):
    model = apps.get_model("chargers", "ChargingSession")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(model, INDEX, concurrently=True)
    else:
        schema_editor.add_index(model, INDEX)


def drop(apps, schema_editor):
    model = apps.get_model("chargers", "ChargingSession")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(model, INDEX, concurrently=True)
    else:
        schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("accounts", "0006_api_key_rate_limit"),
        ("chargers", "0002_authorizations"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="chargingsession", index=INDEX)],
            database_operations=[migrations.RunPython(create, drop)],
        ),
    ]
