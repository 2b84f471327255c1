"""The serving process's GC settings are applied while the app runs and undone after."""

from __future__ import annotations

import gc

from rest_service.core.heap import serving_gc


def test_serving_gc_freezes_startup_objects_and_restores_everything() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    with serving_gc(12_345):
        assert gc.get_threshold() == (12_345, *before[1:])
        assert gc.get_freeze_count() > frozen_before
        # cycles made while serving are still collected
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_serving_gc_zero_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    with serving_gc(0):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
