from __future__ import annotations

import pytest

from conftest import bearer_client


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        email="ops@marqetfi.local", password="x", is_staff=True, is_superuser=True
    )


@pytest.fixture
def ops(staff):
    return bearer_client(staff)
