"""The web process's collector schedule: start-up objects frozen, young threshold raised."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from django.test import override_settings

from marqetfi.core.gc_tuning import web_process_gc_tune


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_the_web_process_freezes_what_start_up_loaded_and_collects_young_objects_less_often() -> None:
    gc.unfreeze()
    with override_settings(WEB_GC_THRESHOLDS=[50_000, 10, 10]):
        assert web_process_gc_tune() == (50_000, 10, 10)
    assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_freeze_count() > 10_000  # Django and the project, out of every collection

    garbage: list[object] = []
    garbage.append(garbage)  # a reference cycle made after start-up is still collected
    del garbage
    assert gc.collect() >= 1


@pytest.mark.usefixtures("restored_gc")
def test_an_empty_setting_keeps_pythons_schedule() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    with override_settings(WEB_GC_THRESHOLDS=[]):
        assert web_process_gc_tune() == before
    assert gc.get_freeze_count() == 0
