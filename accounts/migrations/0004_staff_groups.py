from django.contrib.auth.management import create_permissions
from django.db import migrations

from accounts.staff_groups import staff_groups_sync


def create_staff_groups(apps, schema_editor):
    # Permissions are normally made after the last migration; make them now so the
    # groups get them on the first migrate as well.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    staff_groups_sync(Group=apps.get_model("auth", "Group"), Permission=apps.get_model("auth", "Permission"))


def remove_staff_groups(apps, schema_editor):
    from accounts.staff_groups import GROUPS

    apps.get_model("auth", "Group").objects.filter(name__in=list(GROUPS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_api_keys_call_log_audit"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("chargers", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_staff_groups, remove_staff_groups)]
