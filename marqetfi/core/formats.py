"""Decimal and time as the API writes and reads them.

Out: ``decimal_text`` (positional notation, no trailing zeros) and ``timestamp_text``
(ISO 8601 in UTC ending in ``Z``); every amount and time a response, a socket message or
a webhook carries goes through them. In: ``canonical_decimal`` accepts only the plain
decimal text those functions write (an optional minus, ASCII digits, an optional
fraction), so no exponent, no underscores, no other scripts' digits, no spaces and no
NaN or Infinity ever reach arithmetic.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

CANONICAL_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def decimal_text(value: Decimal) -> str:
    """A Decimal as clients get it: positional notation, no trailing zeros ("0.01", "64123.5", "50")."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def timestamp_text(moment: datetime) -> str:
    """A time as the API writes it: ISO 8601 in UTC with a ``Z`` (as DRF renders datetimes)."""
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def canonical_decimal(text: str) -> bool:
    """Whether ``text`` is plain decimal text: ``-?digits(.digits)?`` in ASCII, nothing around it."""
    return CANONICAL_DECIMAL.fullmatch(text) is not None


def decimal_digits(text: str) -> tuple[int, int]:
    """(whole digits, decimal places) of canonical decimal text, leading and trailing zeros aside.

    Counted on the text, so a client's number is measured before any ``Decimal`` is made of it.
    """
    whole, _, fraction = text.lstrip("-").partition(".")
    return len(whole.lstrip("0")), len(fraction.rstrip("0"))
