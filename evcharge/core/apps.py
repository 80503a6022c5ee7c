from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "evcharge.core"
    label = "core"
    verbose_name = "Platform"
