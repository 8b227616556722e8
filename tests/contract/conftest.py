"""Which operations the Schemathesis run fuzzes as staff as well as a trader."""

from __future__ import annotations

import pytest

# Operations that answer staff differently from a trader: the back office, the platform's
# analytics and the health check's details. Every other operation treats staff as the trader
# it also is, so it is fuzzed as the trader only (about 50 items, 15 s of the suite, fewer).
STAFF_PATHS = ("/api/v1/admin", "/api/v1/analytics", "/api/v1/health")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        staff_only_elsewhere = (
            item.name.startswith("test_every_operation_answers_as_documented[")
            and callspec is not None
            and callspec.params.get("caller") == "staff"
            and not any(f" {path}" in item.name for path in STAFF_PATHS)
        )
        (dropped if staff_only_elsewhere else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
