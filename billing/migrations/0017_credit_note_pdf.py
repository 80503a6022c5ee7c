# Credit notes get a PDF; both PDFs are filed under the year of their number (for the invoice
# a change of state only: upload_to lives in Python).

import billing.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0016_credit_note_waiting_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="creditnote",
            name="pdf",
            field=models.FileField(blank=True, upload_to=billing.models.document_pdf_path),
        ),
        # State only: on SQLite an AlterField remakes the table, which drops its triggers.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="invoice",
                    name="pdf",
                    field=models.FileField(blank=True, upload_to=billing.models.document_pdf_path),
                ),
            ]
        ),
    ]
