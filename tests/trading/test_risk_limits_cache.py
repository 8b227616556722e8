"""Risk limits read from the process's copy: a trader without limits of their own costs no
query for them, and an operator's change applies to the very next order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from tests.accounts.factories import UserFactory
from tests.trading.fixtures_triggers import place
from trading.errors import LeverageLimitExceeded
from trading.models import RiskLimit
from trading.services.risk import risk_profile_get
from trading.services.risk_limits import risk_limit_create, risk_limit_delete, risk_limit_update

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("paper_market")]

LIMITS_TABLE = RiskLimit._meta.db_table


def user(**fields: Any) -> User:
    return cast(User, UserFactory(**fields))


def profile(user: Any) -> Any:
    return risk_profile_get(user=user, symbol="BTCUSD", category="crypto", venue_max_leverage=Decimal(100))


def limit_queries(user: Any) -> int:
    with CaptureQueriesContext(connection) as queries:
        profile(user)
    return sum(LIMITS_TABLE in query["sql"] for query in queries.captured_queries)


def test_a_trader_without_limits_of_their_own_costs_no_query_once_loaded() -> None:
    operator, trader = user(is_staff=True), user()
    risk_limit_create(actor=operator, symbol="BTCUSD", max_leverage=Decimal(7))
    profile(trader)  # loads this process's copy

    assert limit_queries(trader) == 0
    assert profile(trader).max_leverage == Decimal(7)


def test_a_trader_with_limits_of_their_own_gets_them_in_one_query() -> None:
    operator, trader = user(is_staff=True), user()
    risk_limit_create(actor=operator, symbol="BTCUSD", max_leverage=Decimal(7))
    risk_limit_create(actor=operator, user=trader, max_leverage=Decimal(3))
    profile(trader)

    assert limit_queries(trader) == 1
    assert profile(trader).max_leverage == Decimal(3)
    assert profile(user()).max_leverage == Decimal(7)


def test_an_operators_create_update_and_delete_apply_to_the_next_check() -> None:
    operator, trader = user(is_staff=True), user()
    default = profile(trader).max_leverage

    limit = risk_limit_create(actor=operator, symbol="BTCUSD", max_leverage=Decimal(5))
    assert profile(trader).max_leverage == Decimal(5)

    risk_limit_update(risk_limit_id=limit.pk, actor=operator, max_leverage=Decimal(2))
    assert profile(trader).max_leverage == Decimal(2)

    own = risk_limit_create(actor=operator, user=trader, symbol="BTCUSD", max_leverage=Decimal(1))
    assert profile(trader).max_leverage == Decimal(1)

    risk_limit_delete(risk_limit_id=own.pk, actor=operator)
    risk_limit_delete(risk_limit_id=limit.pk, actor=operator)
    assert profile(trader).max_leverage == default


def test_an_order_over_a_limit_created_a_moment_ago_is_refused(
    paper_market: None, funded_trader: Any
) -> None:
    place(funded_trader, collateral=Decimal(5), leverage=Decimal(2))  # the copy is loaded
    risk_limit_create(actor=user(is_staff=True), user=funded_trader, max_leverage=Decimal(2))

    with pytest.raises(LeverageLimitExceeded):
        place(funded_trader, collateral=Decimal(5), leverage=Decimal(3))
