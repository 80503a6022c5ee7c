"""The API call log: contents after real requests, batched flush, crash safety, retention, DynamoDB."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from accounts import call_log
from accounts.models import ApiCallLog
from accounts.tests.conftest import jwt_client, key_client

pytestmark = pytest.mark.django_db


def buffered() -> list[dict]:
    call_log.drain()  # what this process has not shipped yet
    redis = get_redis_connection("default")
    return [json.loads(item) for item in redis.lrange(cache.make_key(call_log.BUFFER), 0, -1)]


def test_each_api_call_is_buffered_then_flushed_with_who_what_and_how_long(world):
    driver = jwt_client(world.a.driver)
    driver.get(f"/api/v1/id-tokens/{world.a.token.pk}/", HTTP_X_REQUEST_ID="req-123")
    missing = driver.get(f"/api/v1/id-tokens/{world.b.token.pk}/")
    by_key = key_client(world.a.key).get("/api/v1/organizations/", REMOTE_ADDR="203.0.113.9")
    anonymous = APIClient().get("/api/v1/me/")
    APIClient().get("/health/live")  # not an API call

    assert ApiCallLog.objects.count() == 0  # nothing written on the request path
    assert len(buffered()) == 4

    assert call_log.flush() == 4
    assert buffered() == []
    rows = {row.request_id: row for row in ApiCallLog.objects.all()}
    first = rows["req-123"]
    assert (first.user_id, first.api_key_id, first.method, first.status) == (
        world.a.driver.pk,
        None,
        "GET",
        200,
    )
    assert first.route == "api/v1/id-tokens/<pk>/"
    assert first.path == f"/api/v1/id-tokens/{world.a.token.pk}/"
    assert first.latency_ms > 0
    assert first.client_ip == "127.0.0.1"
    assert rows[missing["X-Request-ID"]].status == 404
    keyed = rows[by_key["X-Request-ID"]]
    assert (keyed.user_id, keyed.api_key_id, keyed.client_ip) == (None, world.a.api_key.pk, "203.0.113.9")
    anon = rows[anonymous["X-Request-ID"]]
    assert (anon.user_id, anon.api_key_id, anon.status) == (None, None, 401)


def test_the_shipper_thread_moves_entries_to_redis_by_itself(world):
    response = jwt_client(world.a.driver).get("/api/v1/me/")
    redis = get_redis_connection("default")
    key = cache.make_key(call_log.BUFFER)
    deadline = time.monotonic() + 30  # a bound on waiting, not a performance assertion
    while not redis.llen(key) and time.monotonic() < deadline:
        time.sleep(0.05)
    entries = [json.loads(item) for item in redis.lrange(key, 0, -1)]
    assert [e["request_id"] for e in entries] == [response["X-Request-ID"]]


def test_switched_off_nothing_is_logged(settings, world):
    settings.API_CALL_LOG_ENABLED = False
    jwt_client(world.a.driver).get("/api/v1/me/")
    assert buffered() == []


def test_a_flush_that_died_midway_is_finished_by_the_next_without_duplicates(world):
    jwt_client(world.a.driver).get("/api/v1/me/")
    jwt_client(world.a.driver).get("/api/v1/me/")
    call_log.drain()
    redis = get_redis_connection("default")
    # Simulate a flush that moved a batch in flight, inserted it, and died before dropping it.
    entries = redis.lrange(cache.make_key(call_log.BUFFER), 0, -1)
    redis.delete(cache.make_key(call_log.BUFFER))
    redis.rpush(cache.make_key(call_log.IN_FLIGHT), *entries)
    call_log._insert([json.loads(e) for e in entries])
    assert ApiCallLog.objects.count() == 2

    jwt_client(world.a.driver).get("/api/v1/me/")  # and one more arrives meanwhile
    call_log.flush(batch_size=1)
    assert ApiCallLog.objects.count() == 3
    assert redis.llen(cache.make_key(call_log.IN_FLIGHT)) == 0


def test_the_buffer_is_capped_when_flushing_stops(settings, world):
    settings.API_CALL_LOG_BUFFER_MAX = 3
    client = jwt_client(world.a.driver)
    ids = [client.get("/api/v1/me/")["X-Request-ID"] for _ in range(5)]
    assert [entry["request_id"] for entry in buffered()] == ids[-3:]  # the newest kept


def test_only_one_flush_runs_at_a_time(world):
    jwt_client(world.a.driver).get("/api/v1/me/")
    call_log.drain()
    redis = get_redis_connection("default")
    redis.set(cache.make_key(call_log.LOCK), "1", ex=60)
    assert call_log.flush() == 0
    redis.delete(cache.make_key(call_log.LOCK))
    assert call_log.flush() == 1


def _row(at):
    return ApiCallLog(
        entry_id=uuid.uuid4(), at=at, method="GET", path="/api/v1/me/", status=200, latency_ms=1.0
    )


def test_purge_keeps_the_retention_period(settings):
    settings.API_CALL_LOG_RETENTION_DAYS = 30
    now = timezone.now()
    ApiCallLog.objects.bulk_create(
        [
            _row(now - timedelta(days=31)),
            _row(now - timedelta(days=31)),
            _row(now - timedelta(days=29)),
            _row(now),
        ]
    )
    assert call_log.purge(now=now, batch_size=1) == 2
    assert ApiCallLog.objects.count() == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_celery_task_flushes_the_buffer(world, celery_worker_factory):
    from accounts.tasks import api_call_log_flush

    jwt_client(world.a.driver).get("/api/v1/me/")
    call_log.drain()  # the worker is another process: ship this one's entries first
    worker = celery_worker_factory()
    result = api_call_log_flush.apply_async(queue=worker.queue, ignore_result=False)
    assert result.get(timeout=60) == 1, worker.output()
    assert ApiCallLog.objects.get().user_id == world.a.driver.pk


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dynamodb(monkeypatch, tmp_path):
    """A real DynamoDB API on this machine: moto's server mode in its own process."""
    port = _free_port()
    moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
    log = (tmp_path / "moto.log").open("w")
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.slow
def test_the_dynamodb_sink_gets_the_same_entries(settings, world, dynamodb):
    import boto3

    settings.API_CALL_LOG_DYNAMODB_TABLE = "api-calls"
    settings.API_CALL_LOG_DYNAMODB_REGION = "eu-central-1"
    settings.API_CALL_LOG_DYNAMODB_ENDPOINT_URL = dynamodb
    resource = boto3.resource("dynamodb", endpoint_url=dynamodb, region_name="eu-central-1")
    table = resource.create_table(
        TableName="api-calls",
        KeySchema=[{"AttributeName": "entry_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "entry_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    response = jwt_client(world.a.driver).get("/api/v1/me/")
    assert call_log.flush() == 1
    items = table.scan()["Items"]
    assert len(items) == 1
    assert items[0]["request_id"] == response["X-Request-ID"]
    assert int(items[0]["user_id"]) == world.a.driver.pk
    assert int(items[0]["status"]) == 200
    assert str(ApiCallLog.objects.get().entry_id).replace("-", "") == items[0]["entry_id"]
