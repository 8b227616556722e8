from __future__ import annotations

import pytest


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        email="ops@marqetfi.local", password="x", is_staff=True, is_superuser=True
    )
