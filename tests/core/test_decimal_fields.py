"""The one decimal field of the API and the text helpers it shares with every response."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from rest_framework import serializers

from marqetfi.core.api import DecimalStringField
from marqetfi.core.formats import decimal_text, timestamp_text


class Body(serializers.Serializer):
    amount = DecimalStringField(min_value=0, min_exclusive=True, max_value=1000, max_decimal_places=2)
    share = DecimalStringField(
        min_value=-1, max_value=1, max_exclusive=True, max_decimal_places=4, max_digits=5, required=False
    )


def errors(**data: object) -> dict:
    body = Body(data=data)
    assert not body.is_valid()
    return body.errors


@pytest.mark.parametrize(
    "value",
    [
        "1_0",
        "\u0661\u0660",
        " 10 ",
        "10 ",
        "\t10",
        "1e22",
        "1E+400",
        "1e999",
        "NaN",
        "Infinity",
        "+10",
        ".5",
        "5.",
        "",
        "1,5",
        True,
        10.5,
        1e30,
        10**45,
        None,
        ["10"],
    ],
)
def test_only_canonical_decimal_text_or_a_whole_json_number_is_read(value):
    assert "amount" in errors(amount=value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10", Decimal(10)), ("0.01", Decimal("0.01")), (10, Decimal(10)), ("999.990", Decimal("999.99"))],
)
def test_canonical_text_and_whole_numbers_in_range_are_read_exactly(value, expected):
    body = Body(data={"amount": value})
    assert body.is_valid(), body.errors
    assert body.validated_data["amount"] == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "0"}, "Must be greater than 0."),
        ({"amount": "1000.01"}, "Must be at most 1000."),
        ({"amount": "1.001"}, "At most 2 decimal places."),
        ({"amount": "1", "share": "1"}, "Must be less than 1."),
        ({"amount": "1", "share": "-1.0001"}, "Must be at least -1."),
        ({"amount": "1", "share": "0.00001"}, "At most 4 decimal places."),
        ({"amount": "1", "share": "00000000000000000000.5"}, None),
    ],
)
def test_range_precision_and_digits_are_checked_on_the_text(data, message):
    body = Body(data=data)
    if message is None:
        assert body.is_valid(), body.errors
        return
    assert not body.is_valid()
    assert message in str(body.errors)


def test_a_float_is_refused_with_a_hint_to_send_a_string():
    assert "as strings" in str(errors(amount=10.5)["amount"][0])


def test_an_input_field_must_declare_its_range():
    with pytest.raises(TypeError):
        DecimalStringField()
    DecimalStringField(read_only=True)


def test_the_range_is_in_the_help_text_for_the_schema():
    assert Body().fields["amount"].help_text == ("Range: 0 < x ≤ 1000; at most 2 decimal places, 36 digits.")


def test_decimal_and_timestamp_text():
    assert decimal_text(Decimal("64123.50")) == "64123.5"
    assert decimal_text(Decimal("1E+3")) == "1000"
    moment = datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert timestamp_text(moment) == "2025-01-02T03:04:05Z"
    assert timestamp_text(datetime(2025, 1, 2, tzinfo=UTC)).endswith("Z")


def test_pricing_keeps_no_copy_of_the_text_helpers():
    from pricing.services import prices

    assert prices.decimal_text is decimal_text
    assert prices.timestamp_text is timestamp_text
