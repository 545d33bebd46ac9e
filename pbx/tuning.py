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
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

__all__ = [
    "GC_THRESHOLDS",
    "OPEN_FILES_WANTED",
    "GcSettings",
    "lean_log_records",
    "raise_open_file_limit",
    "restore_gc",
    "tune_gc",
]

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


OPEN_FILES_WANTED = 16_384
"""File descriptors `deskpbx serve` asks for: each relayed call holds four sockets (RTP and
RTCP on both legs), a latched leg may add a connected twin, the relay keeps a pool of
parked port pairs, and phones on TCP hold a connection each. 600 calls need about 5,000."""


def lean_log_records() -> None:
    """Log records without the caller's file, line and function, nor thread and process
    names: DeskPBX's log formats print none of them, and finding the caller walks the
    stack on every record (8 % of a call set-up's CPU at 160 calls/s, two INFO lines a
    call). The Python logging HOWTO's "Optimization" section names these switches.
    Call it from a program's entry point, where the formats are chosen."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def raise_open_file_limit(wanted: int = OPEN_FILES_WANTED) -> int | None:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (never above the hard limit); the new
    soft limit, or None where the platform has no such limit (Windows).

    Why: desktops start processes with a low soft limit (1,024 on most Linux
    distributions, 256 on macOS) and a much higher hard one, and a process may raise
    its own soft limit up to the hard one; servers such as rtpengine and nginx do this
    at start. Without it the relay refuses calls (EMFILE) long before the CPU is busy.
    macOS caps the soft limit at OPEN_MAX (10,240) even when the hard limit says
    unlimited, so a refused raise is retried there before giving up.
    """
    try:
        import resource
    except ImportError:  # Windows: handles are not limited this way
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft >= ceiling:
        return soft
    for target in dict.fromkeys((ceiling, min(ceiling, 10_240))):  # OPEN_MAX: once, if lower
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        log.debug("open file limit raised from %d to %d", soft, target)
        return target
    log.warning("open file limit stays at %d: calls are limited to about %d", soft, soft // 8)
    return soft
