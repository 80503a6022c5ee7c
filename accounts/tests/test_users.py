import os
import subprocess
import sys

import pytest
from django.db import IntegrityError

from accounts.models import User
from conftest import ROOT, subprocess_env

pytestmark = pytest.mark.django_db


def test_email_is_the_login_and_is_case_insensitive():
    user = User.objects.create_user(email="Ana@Example.COM", password="s3cret-pass-word")
    assert user.email == "ana@example.com"
    assert User.objects.get_by_natural_key("ANA@example.com") == user
    with pytest.raises(IntegrityError):
        User.objects.create(email="ANA@EXAMPLE.COM")  # the database refuses, whatever the path


def test_passwords_are_hashed_with_argon2(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    user = User.objects.create_user(email="a@example.com", password="s3cret-pass-word")
    assert user.password.startswith("argon2")
    assert user.check_password("s3cret-pass-word")


@pytest.mark.django_db(transaction=True)
def test_createsuperuser_noinput_reads_the_environment():
    env = subprocess_env(
        DJANGO_SUPERUSER_EMAIL="ops@example.com",
        DJANGO_SUPERUSER_PASSWORD="a-long-operator-password",
        SECRET_KEY=os.environ.get("SECRET_KEY", "test-only-key"),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    user = User.objects.get(email="ops@example.com")
    assert user.is_superuser
    assert user.is_staff
    assert user.check_password("a-long-operator-password")


def test_operator_logs_in_to_the_admin_with_email(client):
    User.objects.create_superuser(email="boss@example.com", password="s3cret-pass-word")
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "boss@example.com", "password": "s3cret-pass-word"}
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
