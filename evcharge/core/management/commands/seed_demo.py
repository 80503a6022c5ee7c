"""Load demo data: an operator login and whatever each app offers in its ``demo.py``.

Idempotent: running it again changes nothing that is already there.
"""

import importlib
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_EMAIL = "admin@evcharge.local"
DEMO_APPS = ["accounts", "chargers", "billing"]


def demo_password() -> str:
    """The demo operator's password: made once per checkout, kept in VAR_DIR, never in code."""
    path = settings.VAR_DIR / "demo_admin_password"
    if not path.exists():
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


class Command(BaseCommand):
    help = "Create the demo operator account and demo network (idempotent)."

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            admin, created = User.objects.get_or_create(
                email=DEMO_EMAIL,
                defaults={"full_name": "Demo Operator", "is_staff": True, "is_superuser": True},
            )
            if created:
                admin.set_password(demo_password())
                admin.save(update_fields=["password"])
            for app in DEMO_APPS:
                try:
                    module = importlib.import_module(f"{app}.demo")
                except ModuleNotFoundError as exc:
                    if exc.name != f"{app}.demo":
                        raise
                    continue
                module.seed(operator=admin)
        self.stdout.write(f"demo data ready (operator {DEMO_EMAIL})")
