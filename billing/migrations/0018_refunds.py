"""Refunds: money paid back of what an invoice owes back; ``Invoice.amount_refunded`` their sum.

Existing invoices have refunded nothing (0), which the new check accepts. Its bound is rounded
to the amounts' places (``billing.models.exact_sum``: SQLite adds floats). On SQLite, adding a
column with a default and a check rebuilds ``billing_invoice`` and drops its triggers: 0009's
"never deleted" trigger is made again after (forwards and backwards), as 0015 does.
"""

import importlib
from decimal import Decimal

import django.core.validators
import django.db.models.deletion
import django.db.models.expressions
import django.db.models.functions.math
from django.conf import settings
from django.db import migrations, models

NEVER_DELETED = importlib.import_module("billing.migrations.0009_invoices_never_deleted")


def never_deleted_again(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in (NEVER_DELETED.SQLITE_DROP, NEVER_DELETED.SQLITE):
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0017_credit_note_pdf"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, never_deleted_again),  # backwards: last
        migrations.CreateModel(
            name="Refund",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "amount",
                    models.DecimalField(
                        decimal_places=3,
                        max_digits=16,
                        validators=[django.core.validators.MinValueValidator(Decimal("0.001"))],
                    ),
                ),
                (
                    "currency",
                    models.CharField(
                        choices=[
                            ("AED", "AED"),
                            ("AUD", "AUD"),
                            ("BGN", "BGN"),
                            ("BHD", "BHD"),
                            ("BRL", "BRL"),
                            ("CAD", "CAD"),
                            ("CHF", "CHF"),
                            ("CLP", "CLP"),
                            ("CNY", "CNY"),
                            ("CZK", "CZK"),
                            ("DKK", "DKK"),
                            ("EUR", "EUR"),
                            ("GBP", "GBP"),
                            ("HKD", "HKD"),
                            ("HUF", "HUF"),
                            ("INR", "INR"),
                            ("ISK", "ISK"),
                            ("JOD", "JOD"),
                            ("JPY", "JPY"),
                            ("KRW", "KRW"),
                            ("KWD", "KWD"),
                            ("MXN", "MXN"),
                            ("NOK", "NOK"),
                            ("NZD", "NZD"),
                            ("OMR", "OMR"),
                            ("PLN", "PLN"),
                            ("RON", "RON"),
                            ("SEK", "SEK"),
                            ("SGD", "SGD"),
                            ("TND", "TND"),
                            ("TRY", "TRY"),
                            ("USD", "USD"),
                            ("VND", "VND"),
                            ("ZAR", "ZAR"),
                        ],
                        max_length=3,
                    ),
                ),
                (
                    "method",
                    models.CharField(
                        choices=[
                            ("bank_transfer", "Bank transfer"),
                            ("card", "Card"),
                            ("direct_debit", "Direct debit"),
                            ("cash", "Cash"),
                            ("other", "Other"),
                        ],
                        default="bank_transfer",
                        max_length=16,
                    ),
                ),
                (
                    "reference",
                    models.CharField(help_text="bank or provider reference; idempotency key", max_length=100),
                ),
                ("refunded_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["-refunded_at", "-id"],
            },
        ),
        migrations.AddField(
            model_name="invoice",
            name="amount_refunded",
            field=models.DecimalField(decimal_places=3, default=Decimal("0"), max_digits=16),
        ),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("amount_refunded", 0),
                    models.Q(
                        ("amount_refunded__gt", 0),
                        (
                            "amount_refunded__lte",
                            django.db.models.functions.math.Round(
                                django.db.models.expressions.CombinedExpression(
                                    django.db.models.expressions.CombinedExpression(
                                        models.F("amount_paid"), "+", models.F("amount_credited")
                                    ),
                                    "-",
                                    models.F("total_incl_vat"),
                                ),
                                3,
                            ),
                        ),
                    ),
                    _connector="OR",
                ),
                name="invoice_refunded_within_refundable",
            ),
        ),
        migrations.AddField(
            model_name="refund",
            name="invoice",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="%(class)ss", to="billing.invoice"
            ),
        ),
        # Payment and Refund share an abstract base now: the same related name, spelled as a
        # template ("payments"). No change in the database.
        migrations.AlterField(
            model_name="payment",
            name="invoice",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="%(class)ss", to="billing.invoice"
            ),
        ),
        migrations.AddField(
            model_name="refund",
            name="recorded_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.UniqueConstraint(
                fields=("invoice", "reference"), name="refund_reference_once_per_invoice"
            ),
        ),
        migrations.AddConstraint(
            model_name="refund",
            constraint=models.CheckConstraint(
                condition=models.Q(("amount__gt", 0)), name="refund_amount_positive"
            ),
        ),
        migrations.RunPython(never_deleted_again, migrations.RunPython.noop),
    ]
