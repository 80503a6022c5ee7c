"""Invoice PDFs stored through django-storages on S3, against a local S3-compatible server.

``moto_server`` (moto's stand-alone server mode) speaks the S3 HTTP API on a local port;
boto3 talks to it over HTTP exactly as it talks to AWS. Nothing is mocked in-process.
"""

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from django.core.files.storage import default_storage

from billing import services
from billing.models import Invoice
from billing.tests.factories import (
    IdTokenFactory,
    OrganizationFactory,
    SessionFactory,
    account_for_org,
    default_tariff,
)

BUCKET = "evcharge-invoices"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_endpoint(tmp_path):
    moto_server = Path(sys.executable).parent / "moto_server"
    port = free_port()
    log = (tmp_path / "moto.log").open("w")
    process = subprocess.Popen([str(moto_server), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)
    try:
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_storage(settings, s3_endpoint):
    credentials = {
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "region_name": "eu-central-1",
    }
    boto3.client("s3", endpoint_url=s3_endpoint, **credentials).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "access_key": "testing",
                "secret_key": "testing",
                "region_name": "eu-central-1",
            },
        },
    }
    return boto3.client("s3", endpoint_url=s3_endpoint, **credentials)


@pytest.mark.django_db
def test_invoice_pdf_is_stored_in_s3(s3_storage):
    default_tariff()
    org = OrganizationFactory()
    account_for_org(org)
    services.cdr_create_for_session(session_id=SessionFactory(id_token=IdTokenFactory(organization=org)).pk)
    services.billing_cycle_run(now=datetime(2026, 4, 1, 1, tzinfo=UTC))
    invoice = Invoice.objects.get()

    services.invoice_render_pdf(invoice_id=invoice.pk)

    invoice.refresh_from_db()
    assert type(default_storage._wrapped).__name__ == "S3Storage"
    stored = s3_storage.get_object(Bucket=BUCKET, Key=invoice.pdf.name)["Body"].read()
    assert stored.startswith(b"%PDF")
    assert invoice.pdf.name == f"invoices/2026/{invoice.number}.pdf"
    with invoice.pdf.open("rb") as handle:  # read back through django-storages
        assert handle.read() == stored
    # rendering again changes nothing (the task may be retried)
    services.invoice_render_pdf(invoice_id=invoice.pk)
    keys = [o["Key"] for o in s3_storage.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [invoice.pdf.name]


@pytest.mark.django_db
def test_credit_note_pdf_is_stored_in_s3(s3_storage):
    default_tariff()
    org = OrganizationFactory()
    account_for_org(org)
    cdr = services.cdr_create_for_session(
        session_id=SessionFactory(id_token=IdTokenFactory(organization=org)).pk
    )
    note = services.credit_note_create(cdr=cdr, reason="fault")

    services.credit_note_render_pdf(credit_note_id=note.pk)

    note.refresh_from_db()
    assert note.pdf.name == f"credit-notes/{note.number.split('-')[1]}/{note.number}.pdf"
    stored = s3_storage.get_object(Bucket=BUCKET, Key=note.pdf.name)["Body"].read()
    assert stored.startswith(b"%PDF")
    with note.pdf.open("rb") as handle:
        assert handle.read() == stored
