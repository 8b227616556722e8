"""Run a lifecycle module against both answer modes of the paper venue: ``sync`` (fills in
the call) and ``async`` (every order and close answers ``pending``; our side learns the
outcome only by asking ``get_order``). The assertions stay the same for both.

In a module: ``from tests.trading.answer_modes import paper_answer_mode  # noqa: F401``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sync", "async"])
def paper_answer_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)
