"""Gapless numbers under concurrency: threads with their own PostgreSQL connections."""

import itertools
import threading

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import NumberCounter
from billing.services import number_take, numbers_take

pytestmark = pytest.mark.django_db(transaction=True)

_years = itertools.count(3000)  # a fresh series year per example: no clean-up between examples


class Rollback(Exception):
    pass


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.booleans(), min_size=1, max_size=6), min_size=2, max_size=5))
def test_numbers_are_gapless_under_concurrency(plans):
    """Each thread issues numbers in its own transactions; ``False`` ones roll back after taking one."""
    year = next(_years)
    committed: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(plans))
    lock = threading.Lock()

    def run(plan: list[bool]) -> None:
        try:
            start.wait()
            for keep in plan:
                try:
                    with transaction.atomic():
                        number = number_take(series="INV", year=year)
                        if not keep:
                            raise Rollback
                    with lock:
                        committed.append(number)
                except Rollback:
                    pass
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    expected = sum(keep for plan in plans for keep in plan)
    assert sorted(committed) == [f"INV-{year}-{n:06d}" for n in range(1, expected + 1)]
    counter = NumberCounter.objects.filter(series="INV", year=year).first()
    assert (counter.last_number if counter else 0) == expected


def test_number_take_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError):
        number_take(series="INV", year=2026)


def test_a_batch_takes_consecutive_numbers_and_a_rollback_gives_them_back():
    with transaction.atomic():
        assert numbers_take(series="INV", year=2998, count=3) == [f"INV-2998-00000{n}" for n in (1, 2, 3)]
        assert number_take(series="INV", year=2998) == "INV-2998-000004"
    with transaction.atomic():
        numbers_take(series="INV", year=2998, count=5)
        transaction.set_rollback(True)
    with transaction.atomic():
        assert numbers_take(series="INV", year=2998, count=2) == ["INV-2998-000005", "INV-2998-000006"]
