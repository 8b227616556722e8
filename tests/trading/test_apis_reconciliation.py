"""Staff API of reconciliation: drifts listed with filters and cursor pages, resolved with a
reason (audited), a run on demand; traders get 403."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from conftest import bearer_client
from ledger.checks import ledger_check
from marqetfi.core.models import AuditEntry
from providers.models import PaperPosition
from trading.models import ReconciliationDrift
from trading.services.orders import OrderTerms, order_place

pytestmark = pytest.mark.django_db

DRIFTS = "/api/v1/admin/reconciliation/drifts"
BTC = OrderTerms(symbol="BTCUSD", side="long", type="market", collateral=Decimal(1000), leverage=Decimal(10))


@pytest.fixture(autouse=True)
def _ledger_balanced_after_each_test() -> Iterator[None]:
    yield
    assert ledger_check() == []


def drift(**fields: Any) -> ReconciliationDrift:
    now = timezone.now()
    values: dict[str, Any] = {
        "venue": "paper",
        "account_ref": "acct-1",
        "kind": "size_mismatch",
        "symbol": "BTCUSD",
        "detected_at": now,
        "last_seen_at": now,
        **fields,
    }
    return ReconciliationDrift.objects.create(**values)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", DRIFTS),
        ("post", f"{DRIFTS}/00000000-0000-0000-0000-000000000001/resolve"),
        ("post", "/api/v1/admin/reconciliation/run"),
    ],
)
def test_traders_are_refused(trader, method, path):
    response = getattr(bearer_client(trader), method)(path, {"reason": "x"}, format="json")

    assert response.status_code == 403
    assert "error" in response.json()


def test_drifts_are_listed_newest_first_with_filters_and_cursor_pages(staff):
    missing = drift(kind="missing_at_venue", venue="lighter")
    drift(kind="extra_at_venue")
    resolved = drift(kind="size_mismatch", status="resolved", account_ref="acct-2")
    client = bearer_client(staff)

    first = client.get(DRIFTS, {"limit": 2}).json()
    second = client.get(first["next"]).json()

    assert [d["kind"] for d in first["results"] + second["results"]] == [
        "size_mismatch",
        "extra_at_venue",
        "missing_at_venue",
    ]
    assert second["next"] is None
    assert [d["id"] for d in client.get(DRIFTS, {"venue": "lighter"}).json()["results"]] == [str(missing.pk)]
    assert [d["id"] for d in client.get(DRIFTS, {"status": "resolved"}).json()["results"]] == [
        str(resolved.pk)
    ]
    assert len(client.get(DRIFTS, {"kind": "extra_at_venue", "status": "open"}).json()["results"]) == 1
    bad = client.get(DRIFTS, {"kind": "nonsense"})
    assert bad.status_code == 400 and "kind" in bad.json()["error"]["details"]


def test_resolving_a_drift_records_who_why_and_an_audit_entry(staff):
    open_drift = drift()
    client = bearer_client(staff)

    response = client.post(f"{DRIFTS}/{open_drift.pk}/resolve", {"reason": "venue fixed it"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["resolution"], body["resolved_by"]) == (
        "resolved",
        "venue fixed it",
        str(staff.pk),
    )
    [entry] = AuditEntry.objects.filter(action="reconciliation_drift.resolve")
    assert (entry.actor_id, entry.target_id) == (staff.pk, str(open_drift.pk))
    assert entry.changes["reason"] == "venue fixed it"
    again = client.post(f"{DRIFTS}/{open_drift.pk}/resolve", {"reason": "twice"}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "reconciliation_drift_not_open")


def test_resolving_needs_a_reason_and_an_existing_drift(staff):
    client = bearer_client(staff)

    no_reason = client.post(f"{DRIFTS}/{drift().pk}/resolve", {}, format="json")
    unknown = client.post(
        f"{DRIFTS}/00000000-0000-0000-0000-000000000001/resolve", {"reason": "x"}, format="json"
    )

    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]["details"]
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "reconciliation_drift_not_found")


def test_a_run_on_demand_answers_with_its_summary(staff, trader, drive, settings):
    settings.RECONCILIATION_ORDER_GRACE_SECONDS = 0
    drive(BTCUSD="64000")
    order_place(user=trader, order=BTC)
    PaperPosition.objects.filter(account_ref=str(trader.pk)).update(status="closed")

    response = bearer_client(staff).post("/api/v1/admin/reconciliation/run")

    assert response.status_code == 200
    body = response.json()
    assert (body["drifts_found"], body["drifts_opened"]) == (1, 1)
    assert body["venues"][0]["venue"] == "paper" and body["venues"][0]["ok"] is True
    [listed] = bearer_client(staff).get(DRIFTS).json()["results"]
    assert (listed["kind"], listed["user_id"]) == ("missing_at_venue", str(trader.pk))


@pytest.fixture
def operator_client(client: Any, django_user_model: Any) -> Any:
    operator = django_user_model.objects.create_superuser(email="ops@marqetfi.local", password="ops-Pass-1")
    client.force_login(operator)
    client.operator = operator
    return client


def test_the_admin_lists_drifts_by_filter_and_marks_them_resolved_audited(operator_client):
    open_drift = drift(kind="extra_at_venue", venue="ostium")
    drift(kind="size_mismatch")
    changelist = reverse("admin:trading_reconciliationdrift_changelist")

    page = operator_client.get(changelist, {"venue": "ostium", "kind": "extra_at_venue", "status": "open"})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1

    operator_client.post(
        changelist, {"action": "mark_resolved", "_selected_action": [str(open_drift.pk)]}, follow=True
    )

    open_drift.refresh_from_db()
    assert (open_drift.status, open_drift.resolved_by_id) == ("resolved", operator_client.operator.pk)
    assert AuditEntry.objects.filter(
        action="reconciliation_drift.resolve", target_id=str(open_drift.pk)
    ).exists()
    assert operator_client.get(reverse("admin:trading_venuereconciliation_changelist")).status_code == 200
