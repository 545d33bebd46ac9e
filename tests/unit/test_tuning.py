"""tune_gc(): thresholds raised, start-up objects frozen, and all of it undone."""

from __future__ import annotations

import gc

from pbx.tuning import GC_THRESHOLDS, restore_gc, tune_gc


def test_tune_gc_freezes_start_up_objects_and_raises_thresholds() -> None:
    before = gc.get_threshold()
    kept = [object() for _ in range(10)]
    settings = tune_gc()
    try:
        assert gc.get_threshold() == GC_THRESHOLDS
        assert settings.previous_thresholds == before
        assert settings.frozen == gc.get_freeze_count() > len(kept)
    finally:
        restore_gc(settings)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected_after_tuning() -> None:
    settings = tune_gc((1000, 10, 10), freeze=False)
    try:
        assert gc.get_freeze_count() == 0
        node: list[object] = []
        node.append(node)
        del node
        assert gc.collect() >= 1
    finally:
        restore_gc(settings)
