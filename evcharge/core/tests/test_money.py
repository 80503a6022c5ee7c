from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evcharge.core.money import MINOR_UNITS, Money, UnknownCurrency, round_half_up


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("1.005", "EUR", "1.01"),  # half goes up, not to even
        ("1.004999", "EUR", "1.00"),
        ("2.675", "EUR", "2.68"),  # the classic float trap: exact in Decimal
        ("-1.005", "EUR", "-1.01"),  # half-up is away from zero for negatives (credit notes)
        ("149.5", "JPY", "150"),
        ("0.0005", "KWD", "0.001"),
        ("0.0004", "KWD", "0.000"),
    ],
)
def test_round_half_up_to_the_minor_unit(amount, currency, expected):
    assert round_half_up(Decimal(amount), currency) == Decimal(expected)
    assert str(round_half_up(Decimal(amount), currency)) == expected


def test_floats_are_refused():
    with pytest.raises(TypeError):
        Money(1.5, "EUR")
    with pytest.raises(TypeError):
        round_half_up(1.5, "EUR")


def test_unknown_currency_is_refused():
    with pytest.raises(UnknownCurrency):
        Money(Decimal(1), "XXX")


def test_mixing_currencies_is_refused():
    with pytest.raises(ValueError, match="currency mismatch"):
        Money(Decimal(1), "EUR") + Money(Decimal(1), "USD")


def test_api_shape_is_a_decimal_string_and_a_code():
    assert Money(Decimal("12.30"), "EUR").as_api() == {"amount": "12.30", "currency": "EUR"}


@given(
    amount=st.decimals(min_value=-(10**9), max_value=10**9, allow_nan=False, allow_infinity=False, places=6),
    currency=st.sampled_from(sorted(MINOR_UNITS)),
)
def test_rounding_moves_at_most_half_a_minor_unit(amount, currency):
    rounded = round_half_up(amount, currency)
    half = Decimal(1).scaleb(-MINOR_UNITS[currency]) / 2
    assert abs(rounded - amount) <= half
    assert rounded.as_tuple().exponent == -MINOR_UNITS[currency]
    assert round_half_up(rounded, currency) == rounded  # idempotent
