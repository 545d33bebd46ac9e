"""Process-wide interpreter settings for a long-running PBX (`deskpbx serve`, the desktop app).

The SIP hot paths allocate many small, short-lived objects (parsed headers, events,
transactions) and almost none of them form reference cycles, so reference counting
frees them. CPython's cyclic collector still scans the young generation every 700 net
allocations, and its older generations hold everything built at start-up (modules,
the store, the compiled regexes), which a full collection walks again and again.

`tune_gc()` is meant to be called once, after start-up has built its long-lived
objects and before traffic:

- `gc.freeze()` moves every object alive at that moment into the permanent
  generation, which no collection scans again;
- higher thresholds make young collections rarer (cycles are still collected: a
  call's dialog/transaction cycles are found a little later, not leaked).

Call it from the composition root once the PBX listens (`pbx.server.Pbx.start()`
after `log.info("DeskPBX ... listening")`, or `serve()` after `pbx.start()`).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass

__all__ = ["GC_THRESHOLDS", "GcSettings", "restore_gc", "tune_gc"]

GC_THRESHOLDS = (50_000, 20, 100)
"""Young-generation allocations before a collection (CPython default 700), and how many
younger collections trigger the next generation's (defaults 10 and 10)."""


@dataclass(frozen=True, slots=True)
class GcSettings:
    """What tune_gc() changed, so a caller (or a test) can put it back."""

    previous_thresholds: tuple[int, int, int]
    thresholds: tuple[int, int, int]
    frozen: int


def tune_gc(thresholds: tuple[int, int, int] = GC_THRESHOLDS, *, freeze: bool = True) -> GcSettings:
    """Raise the collector's thresholds and freeze what start-up built (see module doc)."""
    previous = gc.get_threshold()
    if freeze:
        gc.collect()  # free start-up garbage first, so it is not frozen for good
        gc.freeze()
    gc.set_threshold(*thresholds)
    return GcSettings(previous, thresholds, gc.get_freeze_count())


def restore_gc(settings: GcSettings) -> None:
    """Undo tune_gc(): previous thresholds, frozen objects back under collection."""
    gc.set_threshold(*settings.previous_thresholds)
    gc.unfreeze()
