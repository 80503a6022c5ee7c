"""Rate limits hold under concurrency: the counter is atomic in Redis, never read-then-write."""

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from accounts.tests.conftest import jwt_client, key_client
from accounts.tests.factories import UserFactory
from accounts.throttling import RedisRateThrottle, parse_rate

# A window of ~11.6 days: a test run never straddles two windows.
LONG_WINDOW = "1000000s"


def test_parse_rate():
    assert parse_rate("600/min") == (600, 60)
    assert parse_rate("10/5s") == (10, 5)
    assert parse_rate("3/hour") == (3, 3600)
    assert parse_rate(None) is None


@pytest.mark.django_db
def test_exactly_the_limit_passes_when_many_threads_call_at_once(settings):
    settings.API_RATE_LIMITS = {"default": {"user": f"25/{LONG_WINDOW}", "api_key": None, "anon": None}}
    user = UserFactory()
    factory = APIRequestFactory()
    view = APIView()
    barrier = threading.Barrier(16)

    def attempts(_):
        barrier.wait()
        allowed = 0
        for _ in range(10):
            request = factory.get("/api/v1/me/")
            force_authenticate(request, user)
            drf_request = view.initialize_request(request)
            if RedisRateThrottle().allow_request(drf_request, view):
                allowed += 1
        return allowed

    with ThreadPoolExecutor(max_workers=16) as pool:
        allowed = sum(pool.map(attempts, range(16)))
    assert allowed == 25  # of 160 concurrent attempts


@pytest.mark.django_db
def test_users_and_keys_are_counted_apart_and_scopes_have_their_own_rates(settings, world):
    settings.API_RATE_LIMITS = {
        "default": {"user": f"2/{LONG_WINDOW}", "api_key": f"3/{LONG_WINDOW}", "anon": f"1/{LONG_WINDOW}"},
        "auth": {"user": None, "api_key": None, "anon": f"5/{LONG_WINDOW}"},
    }
    driver, other, key = jwt_client(world.a.driver), jwt_client(world.b.driver), key_client(world.a.key)
    assert [driver.get("/api/v1/id-tokens/").status_code for _ in range(3)] == [200, 200, 429]
    assert other.get("/api/v1/id-tokens/").status_code == 200
    assert [key.get("/api/v1/id-tokens/").status_code for _ in range(4)] == [200, 200, 200, 429]
    # The login endpoint has its own scope: the anonymous default of 1 does not apply there.
    statuses = [
        jwt_client(world.a.driver).__class__().post("/api/v1/auth/token/", {}).status_code for _ in range(6)
    ]
    assert statuses == [400] * 5 + [429]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_for_concurrent_http_requests_to_a_live_server(settings, live_server):
    settings.API_RATE_LIMITS = {"default": {"user": f"10/{LONG_WINDOW}", "api_key": None, "anon": None}}
    from rest_framework_simplejwt.tokens import RefreshToken

    user = UserFactory()
    token = str(RefreshToken.for_user(user).access_token)
    barrier = threading.Barrier(30)

    def fetch(_):
        request = urllib.request.Request(  # noqa: S310 (the test's own live server)
            f"{live_server.url}/api/v1/me/",
            headers={
                "Authorization": f"Bearer {token}",
                # the live server's middleware was built before the
                # test settings: say TLS ended at a proxy
                "X-Forwarded-Proto": "https",
            },
        )
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, None, None
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Retry-After"), json.loads(error.read())

    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(fetch, range(30)))
    assert sorted(status for status, _, _ in results).count(200) == 10
    refused = [r for r in results if r[0] == 429]
    assert len(refused) == 20
    for _status, retry_after, body in refused:
        assert int(retry_after) >= 1
        assert body["error"]["code"] == "throttled"


@pytest.mark.django_db
def test_an_operator_can_give_a_key_its_own_rate(settings, world):
    settings.API_RATE_LIMITS = {"default": {"user": None, "api_key": f"100/{LONG_WINDOW}", "anon": None}}
    world.a.api_key.rate_limit = f"2/{LONG_WINDOW}"
    world.a.api_key.full_clean()
    world.a.api_key.save()
    slow, other = key_client(world.a.key), key_client(world.b.key)
    assert [slow.get("/api/v1/id-tokens/").status_code for _ in range(3)] == [200, 200, 429]
    assert [other.get("/api/v1/id-tokens/").status_code for _ in range(3)] == [200, 200, 200]


@pytest.mark.django_db
def test_a_malformed_key_rate_is_refused(world):
    from django.core.exceptions import ValidationError

    world.a.api_key.rate_limit = "lots"
    with pytest.raises(ValidationError):
        world.a.api_key.full_clean()
