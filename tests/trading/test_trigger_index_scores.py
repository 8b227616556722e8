"""The trigger index keeps prices as Redis double scores; a range query must never miss a
member its Decimal price crosses (candidates are re-checked with Decimals afterwards)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from trading.triggers.index import score

PRICES = st.decimals(min_value=Decimal("1e-18"), max_value=Decimal(10) ** 12, places=18, allow_nan=False)


@given(PRICES, PRICES)
def test_a_price_at_or_past_a_trigger_scores_at_or_past_it(a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert score(low) <= score(high)


def test_prices_closer_than_a_double_can_tell_share_a_score_and_so_stay_candidates() -> None:
    stop, bid = Decimal("64000.000000000000000001"), Decimal("64000")
    assert bid < stop and score(bid) <= score(stop)  # bid_below: found, then judged by Decimals
