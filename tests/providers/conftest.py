from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings

from providers import registry
from tests.providers.venues import providers_with_venues


@pytest.fixture
def venues() -> Iterator[None]:
    with override_settings(PROVIDERS=providers_with_venues()):
        registry.reset_cache()
        yield
    registry.reset_cache()


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        email="ops@marqetfi.local", password="x", is_staff=True, is_superuser=True
    )


@pytest.fixture
def leak_guard_secret(caplog):
    """Register a secret; after the test no captured log record may contain it."""
    secrets: list[str] = []
    yield secrets.append
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    leaked = [s for s in secrets if s in text]
    assert not leaked, "secret written to the logs"
