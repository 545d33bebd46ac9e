"""A callback run every few seconds on the PBX's loop: the watches over calls and phones.

Why one class: the media watch, the session timers, the dialog ping and the OPTIONS qualify
of registered phones each look on a clock of their own, and each must keep looking when one
look fails (a bug in one call must not stop the watch, nor the PBX). Stopping it cancels the
next look.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """`run()` every `interval` seconds once started, until stopped; never when interval is 0."""

    def __init__(self, interval: float, run: Callable[[], object], name: str) -> None:
        self.interval = interval
        self.run = run
        self.name = name
        self._handle: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        if self.interval > 0 and self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self._handle = None
        try:
            self.run()
        except Exception:  # a bug here must not stop the next look, nor the PBX
            log.exception("%s failed", self.name)
        self.start()
