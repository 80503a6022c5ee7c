"""A CDR's four references (session, account, tariff, snapshot) are checked once per statement
instead of once per row; and the SQLite quick start gets back the queue triggers it had lost.

**PostgreSQL.** A foreign key checks every new row on its own at commit: one lookup and one
row lock per reference, four per CDR. Pricing writes CDRs 2,000 at a time with ``COPY``, and
those checks were about a third of the database's time per CDR. The constraints give way to
triggers with the same guarantees:

- after each insert statement, one query per parent locks the rows the new CDRs name
  (``FOR KEY SHARE``, as a foreign key's check does) and then refuses the statement if any of
  them does not exist;
- a parent row (session, billing account, tariff, tariff snapshot) refuses to be deleted while
  a CDR names it. A delete racing an insert is serialised by that lock: it waits for the
  inserting transaction and then sees its CDRs; an insert racing a delete waits for it, and
  its check then finds the parent gone.

**SQLite** (the embedded quick start). Row triggers check the same on each insert and delete.
Changing the columns rebuilds the table on SQLite, which drops its triggers, and 0009's
rebuild of the invoice lines had dropped the two line triggers of 0008: billed CDRs stayed in
the unbilled queue. They are all created again here, and billed CDRs leave the queue.
A later migration that rebuilds ``billing_cdr`` on SQLite must do as this one does: drop the
queue triggers first (SQLite refuses to rename a table a trigger reads) and make them again after.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models

QUEUE = importlib.import_module("billing.migrations.0008_unbilled_cdr_queue")

# (parent table, the CDR column naming it, whether that column may be NULL)
PARENTS = (
    ("chargers_chargingsession", "session_id", False),
    ("billing_billingaccount", "account_id", True),
    ("billing_tariff", "tariff_id", True),
    ("billing_tariffsnapshot", "snapshot_id", False),
)

POSTGRESQL = """
CREATE FUNCTION billing_cdr_check_references() RETURNS trigger AS $$
DECLARE
    missing bigint;
BEGIN
    -- Lock first, then look: a delete that committed while we waited for its lock is seen.
    PERFORM 1 FROM chargers_chargingsession WHERE id IN (SELECT session_id FROM new_cdrs) FOR KEY SHARE;
    PERFORM 1 FROM billing_billingaccount WHERE id IN (SELECT account_id FROM new_cdrs) FOR KEY SHARE;
    PERFORM 1 FROM billing_tariff WHERE id IN (SELECT tariff_id FROM new_cdrs) FOR KEY SHARE;
    PERFORM 1 FROM billing_tariffsnapshot WHERE id IN (SELECT snapshot_id FROM new_cdrs) FOR KEY SHARE;
    SELECT n.session_id INTO missing FROM new_cdrs n
    WHERE NOT EXISTS (SELECT 1 FROM chargers_chargingsession p WHERE p.id = n.session_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a CDR names session %, which does not exist', missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT n.account_id INTO missing FROM new_cdrs n
    WHERE n.account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM billing_billingaccount p WHERE p.id = n.account_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a CDR names billing account %, which does not exist', missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT n.tariff_id INTO missing FROM new_cdrs n
    WHERE n.tariff_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM billing_tariff p WHERE p.id = n.tariff_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a CDR names tariff %, which does not exist', missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT n.snapshot_id INTO missing FROM new_cdrs n
    WHERE NOT EXISTS (SELECT 1 FROM billing_tariffsnapshot p WHERE p.id = n.snapshot_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a CDR names tariff snapshot %, which does not exist', missing USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER billing_cdr_references AFTER INSERT ON billing_cdr
    REFERENCING NEW TABLE AS new_cdrs FOR EACH STATEMENT EXECUTE FUNCTION billing_cdr_check_references();

-- TG_ARGV[0]: the CDR column that names the parent table the trigger is on.
CREATE FUNCTION billing_cdr_parent_refuse_delete() RETURNS trigger AS $$
DECLARE
    named boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM billing_cdr WHERE %I = $1)', TG_ARGV[0]) INTO named USING OLD.id;
    IF named THEN
        RAISE EXCEPTION '% % cannot be deleted: a CDR names it', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;
"""
POSTGRESQL_PARENT = """
CREATE TRIGGER billing_cdr_named BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION billing_cdr_parent_refuse_delete('{column}');
"""
POSTGRESQL_DROP = [
    *(f"DROP TRIGGER IF EXISTS billing_cdr_named ON {table}" for table, _, _ in PARENTS),
    "DROP FUNCTION IF EXISTS billing_cdr_parent_refuse_delete()",
    "DROP TRIGGER IF EXISTS billing_cdr_references ON billing_cdr",
    "DROP FUNCTION IF EXISTS billing_cdr_check_references()",
]

SQLITE_CHECK = """
CREATE TRIGGER billing_cdr_references BEFORE INSERT ON billing_cdr
WHEN {missing}
BEGIN
    SELECT RAISE(ABORT, 'a CDR must name an existing session, billing account, tariff and tariff snapshot');
END
"""
SQLITE_PARENT = """
CREATE TRIGGER billing_cdr_named_{table} BEFORE DELETE ON {table}
WHEN EXISTS (SELECT 1 FROM billing_cdr WHERE {column} = OLD.id)
BEGIN
    SELECT RAISE(ABORT, '{table} row cannot be deleted: a CDR names it');
END
"""
# Lines made while the line triggers were missing took their CDRs off nothing.
SQLITE_REPAIR = "DELETE FROM billing_unbilledcdr WHERE cdr_id IN (SELECT cdr_id FROM billing_invoiceline)"


def _sqlite_check() -> str:
    tests = []
    for table, column, nullable in PARENTS:
        test = f"NOT EXISTS (SELECT 1 FROM {table} WHERE id = NEW.{column})"
        tests.append(f"(NEW.{column} IS NOT NULL AND {test})" if nullable else test)
    return SQLITE_CHECK.format(missing="\n  OR ".join(tests))


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        statements = [POSTGRESQL] + [POSTGRESQL_PARENT.format(table=t, column=c) for t, c, _ in PARENTS]
    elif vendor == "sqlite":
        statements = [
            *QUEUE.SQLITE,
            SQLITE_REPAIR,
            _sqlite_check(),
            *(SQLITE_PARENT.format(table=t, column=c) for t, c, _ in PARENTS),
        ]
    else:
        raise NotImplementedError(f"the CDR reference triggers exist for PostgreSQL and SQLite, not {vendor}")
    for statement in statements:
        schema_editor.execute(statement, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        statements = POSTGRESQL_DROP
    else:  # the foreign keys come back with the table rebuilds; the queue triggers after them
        statements = [
            "DROP TRIGGER IF EXISTS billing_cdr_references",
            *(f"DROP TRIGGER IF EXISTS billing_cdr_named_{table}" for table, _, _ in PARENTS),
            *QUEUE.SQLITE_DROP,  # a line trigger reads billing_cdr, which SQLite's rebuild renames
        ]
    for statement in statements:
        schema_editor.execute(statement, params=None)


def queue_triggers_drop(apps, schema_editor):
    """Forwards, SQLite: no queue trigger may read billing_cdr while it is rebuilt."""
    if schema_editor.connection.vendor == "sqlite":
        for statement in QUEUE.SQLITE_DROP:
            schema_editor.execute(statement, params=None)


def queue_triggers_back(apps, schema_editor):
    """Backwards, SQLite: the rebuilds dropped the queue's CDR trigger; make 0008's set again."""
    if schema_editor.connection.vendor == "sqlite":
        for statement in [*QUEUE.SQLITE_DROP, *QUEUE.SQLITE]:
            schema_editor.execute(statement, params=None)


def _without_constraint(name: str, field):
    return migrations.AlterField(model_name="cdr", name=name, field=field)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0009_invoices_never_deleted"),
        ("chargers", "0003_session_stopped_index"),
    ]

    operations = [
        migrations.RunPython(queue_triggers_drop, queue_triggers_back),
        _without_constraint(
            "account",
            models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="cdrs",
                to="billing.billingaccount",
            ),
        ),
        _without_constraint(
            "session",
            models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="cdr",
                to="chargers.chargingsession",
            ),
        ),
        _without_constraint(
            "snapshot",
            models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="billing.tariffsnapshot",
            ),
        ),
        _without_constraint(
            "tariff",
            models.ForeignKey(
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="cdrs",
                to="billing.tariff",
            ),
        ),
        # After the rebuilds (SQLite), so that the triggers are made on the final table.
        migrations.RunPython(create, drop),
    ]
