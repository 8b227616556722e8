"""The operators' dashboard page of the admin (``/admin/dashboard/``), staff only."""

from __future__ import annotations

from datetime import date, timedelta

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from backoffice.presenters import bar_chart
from backoffice.selectors import PERIOD_DAYS, dashboard_figures, dashboard_period
from backoffice.services import daily_figures_fill


def _date(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def dashboard_view(request: HttpRequest) -> TemplateResponse:
    """Parse the period (``?period=7d|30d|90d|365d`` or ``?from=YYYY-MM-DD&to=YYYY-MM-DD``),
    store the rollups of its closed days not stored yet (once), read the figures and render
    them; an unreadable period falls back to the default."""
    today = timezone.localdate()
    period = dashboard_period(
        name=request.GET.get("period"),
        first=_date(request.GET.get("from")),
        last=_date(request.GET.get("to")),
        today=today,
    )
    closed_last = min(period.last, today - timedelta(days=1))
    if period.first <= closed_last:
        daily_figures_fill(first=period.first, last=closed_last)
    figures = dashboard_figures(period=period, today=today)
    charts = {
        "signups": bar_chart("Sign-ups per day", figures.signups_per_day),
        "traders": bar_chart("Active traders per day (users with a fill)", figures.active_traders_per_day),
        "volume": bar_chart("Trading volume per day", figures.volume_per_day, unit="USDC"),
        "fees": bar_chart("Fees taken per day", figures.fees_per_day, unit="USDC"),
        "pnl": bar_chart(
            "Platform P&L per day (traders' losses less gains)", figures.platform_pnl_per_day, unit="USDC"
        ),
        "webhooks_failed": bar_chart(
            "Webhook deliveries failed per day",
            [(day, failed) for day, _, failed in figures.webhook_deliveries_per_day],
        ),
        "drifts": bar_chart("Reconciliation drifts found per day", figures.drifts_found_per_day),
    }
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "figures": figures,
        "charts": charts,
        "periods": list(PERIOD_DAYS),
    }
    return TemplateResponse(request, "admin/backoffice/dashboard.html", context)
