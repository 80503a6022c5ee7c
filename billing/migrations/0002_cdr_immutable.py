"""CDRs are immutable: PostgreSQL refuses any UPDATE of a billing_cdr row (SPEC §5, §9).

Corrections are credit notes. (The embedded SQLite mode has no trigger; services never update.)
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION billing_cdr_refuse_update() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'CDR % is immutable; issue a credit note instead', OLD.id
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_cdr_immutable BEFORE UPDATE ON billing_cdr
    FOR EACH ROW EXECUTE FUNCTION billing_cdr_refuse_update();
"""
DROP = """
DROP TRIGGER IF EXISTS billing_cdr_immutable ON billing_cdr;
DROP FUNCTION IF EXISTS billing_cdr_refuse_update();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
