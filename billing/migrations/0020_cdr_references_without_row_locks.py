"""A CDR insert no longer locks the rows its CDRs name; a parent's delete locks the CDR table.

0010's statement trigger locked every session, account, tariff and snapshot a batch of new
CDRs names (``FOR KEY SHARE``) so that a delete racing the insert had to wait for it. Locking a
row writes to it: pricing a million sessions rewrote a million session rows (pages dirtied,
WAL written, vacuumed again later), and the locks were about a fifth of the database's CPU per
CDR. Deletes of those rows are rare (an operator in the admin); CDR inserts are not. So the
waiting moves to the rare side:

- after each insert or ``COPY``, the trigger only checks that every row the new CDRs name
  exists (one anti-join per parent), and refuses the statement otherwise;
- deleting a session, billing account, tariff or tariff snapshot first takes the CDR table in
  ``SHARE`` mode, which waits for every transaction that is writing CDRs to end and keeps new
  writers out until the deleting transaction ends; then it refuses if a CDR names the row.

An insert that started first: the delete waits for it, then sees its CDRs (read committed:
each statement of the trigger takes a new snapshot) and is refused. A delete that started
first: the insert waits for the table until it ends, then its check finds the row gone. The
outcome is 0010's; only who waits differs. (Deleting a parent pauses CDR writes for as long
as that transaction lasts; a delete waits at most 5 s for the table and is then refused,
"try again": ``SHARE`` also waits for a vacuum of ``billing_cdr``, and CDR writers queue behind
a waiting delete. The deleting role needs the UPDATE, DELETE or TRUNCATE
privilege on ``billing_cdr`` that ``SHARE`` mode asks for: the tables' owner, which the
project's one database role is.) SQLite (the quick start) runs one writer at a time: its row
triggers stay as they are.
"""

import importlib

from django.db import migrations

REFERENCES = importlib.import_module("billing.migrations.0010_cdr_references_per_statement")

WHAT = {
    "chargers_chargingsession": "session",
    "billing_billingaccount": "billing account",
    "billing_tariff": "tariff",
    "billing_tariffsnapshot": "tariff snapshot",
}
ONE_CHECK = """
    SELECT n.{column} INTO missing FROM new_cdrs n
    WHERE {not_null}NOT EXISTS (SELECT 1 FROM {table} p WHERE p.id = n.{column}) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a CDR names {what} %, which does not exist', missing USING ERRCODE = 'foreign_key_violation';
    END IF;"""
CHECK = """
CREATE OR REPLACE FUNCTION billing_cdr_check_references() RETURNS trigger AS $$
DECLARE
    missing bigint;
BEGIN{checks}
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
""".format(
    checks="".join(
        ONE_CHECK.format(
            column=column,
            table=table,
            what=WHAT[table],
            not_null=f"n.{column} IS NOT NULL AND " if nullable else "",
        )
        for table, column, nullable in REFERENCES.PARENTS
    )
)


def _functions_0010() -> list[str]:
    """0010's two functions, as ``CREATE OR REPLACE`` (its text also makes the insert trigger)."""
    check, rest = REFERENCES.POSTGRESQL.split("CREATE TRIGGER billing_cdr_references", 1)
    parent = rest[rest.index("CREATE FUNCTION billing_cdr_parent_refuse_delete") :]
    return [text.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION") for text in (check, parent)]


# 0010's parent function with the table lock first, waited for at most LOCK_WAIT: a CDR writer
# that stays open, or a vacuum of billing_cdr that does not give way (one against transaction
# id wraparound), would otherwise hold the delete, and every CDR writer queued behind it.
LOCK_WAIT = "5s"
PARENT = (
    _functions_0010()[1]
    .replace("    named boolean;\n", "    named boolean;\n    timeout text := current_setting('lock_timeout');\n", 1)
    .replace(
        "BEGIN\n",
        f"""BEGIN
    -- Wait for the transactions writing CDRs, and hold new ones off until this one ends.
    PERFORM set_config('lock_timeout', '{LOCK_WAIT}', true);
    BEGIN
        LOCK TABLE billing_cdr IN SHARE MODE;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION '% % cannot be deleted now: CDRs are being written or their table vacuumed; try again',
            TG_TABLE_NAME, OLD.id USING ERRCODE = 'lock_not_available';
    END;
    PERFORM set_config('lock_timeout', timeout, true);
""",
        1,
    )
)
assert "LOCK TABLE" in PARENT


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements():
                schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("billing", "0019_sqlite_exact_sums")]

    operations = [migrations.RunPython(_run(lambda: [CHECK, PARENT]), _run(_functions_0010))]
