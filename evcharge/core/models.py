from django.db import models


class TimeStampedModel(models.Model):
    """Base for domain rows: when they were made and last changed (UTC)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
