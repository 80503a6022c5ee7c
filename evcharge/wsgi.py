"""WSGI entry point for the `web` process (gunicorn): API, admin, health, metrics."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evcharge.settings")

application = get_wsgi_application()
