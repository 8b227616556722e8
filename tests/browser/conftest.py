"""Browser tests: Playwright for Python drives Debian's Chromium (``/usr/bin/chromium``, installed
by ``tests/browser/install-chromium.sh`` from ``make test``; never a browser Playwright downloads),
headless, against pytest-django's live server. Each test leaves a full-page screenshot in
``var/test-artifacts/browser/<test>.png``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, sync_playwright

from accounts.models import User

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts" / "browser"
PASSWORD = "browser-test-Password-1"


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run tests/browser/install-chromium.sh (make test does)")
    # Playwright's sync API keeps an event loop in this thread between its calls; the ORM calls
    # a test makes meanwhile are plain synchronous ones, which Django would otherwise refuse.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    opened = context.new_page()
    yield opened
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def admin_login(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Sign in to the admin through its login form, as an operator does."""
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base_url}/admin/")


def admin_action_run(page: Page, *, row_pk: object, action: str) -> None:
    """On the changelist open in ``page``: tick ``row_pk``, choose ``action``, press Go."""
    page.check(f"input[name=_selected_action][value='{row_pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


@pytest.fixture
def superuser(transactional_db: Any) -> Any:
    return User.objects.create_superuser(email="operator@example.com", password=PASSWORD)
