"""The only place where asyncio meets Qt (design.md, "GUI <-> PBX thread").

The PBX and the softphone's user agent run on their own thread and asyncio
loop. The GUI talks to them in two directions, and never waits:

* GUI -> loop: `Bridge.submit(fn, *args)` schedules `fn(*args)` (a coroutine
  function or a plain callable) on the loop with `run_coroutine_threadsafe`.
  Its result or exception hops back to the GUI thread through a queued Qt
  signal and is handed to `on_done` / `on_error` there (Anki's run_on_main).
  Nothing here calls `.result()` on the GUI thread or uses a blocking
  connection.
* loop -> GUI: the phone publishes frozen events (app.phone) with
  `Bridge.publish(event)`, callable from any thread; it only emits the
  `phone_event` signal, which Qt queues to slots on the GUI thread.

`LoopThread` gives the app a loop of its own when no embedded PBX supplies
one (an external account) and gives tests a real loop without a PBX.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from app.phone import Notice
from app.qt import QObject, Signal, Slot

log = logging.getLogger(__name__)

Callback = Callable[[Any], None]


class Bridge(QObject):
    """Lives on the GUI thread; submits work to `loop` and re-emits its events."""

    phone_event = Signal(object)
    """Every app.phone event, on the GUI thread (not `event`: that is QObject's own)."""
    _finished = Signal(object, object, object)  # callback, value, is_error

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.loop = loop
        """Set once the PBX (or LoopThread) runs; events can be published before that."""
        self.pending = 0
        self._finished.connect(self._deliver)

    def publish(self, event: object) -> None:
        """Hand an event to the GUI; safe from any thread (a queued signal)."""
        self.phone_event.emit(event)

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        on_done: Callback | None = None,
        on_error: Callback | None = None,
        what: str = "",
    ) -> Future[Any]:
        """Run `fn(*args)` on the loop; its outcome comes back to the GUI thread.

        Without `on_error`, a failure becomes a `Notice` on the `phone_event` signal
        saying what failed, so an action the user took never fails silently.
        """
        if self.loop is None or self.loop.is_closed():
            raise RuntimeError("the phone has stopped")
        future = asyncio.run_coroutine_threadsafe(_invoke(fn, args), self.loop)
        self.pending += 1
        label = what or getattr(fn, "__name__", "action")

        def finished(done: Future[Any]) -> None:
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                self._finished.emit(on_done, done.result(), False)
            elif on_error is not None:
                self._finished.emit(on_error, error, True)
            else:
                log.warning("%s failed: %s", label, error)
                self._finished.emit(self.publish, Notice(f"{label} failed: {error}"), True)

        future.add_done_callback(finished)
        return future

    @Slot(object, object, object)
    def _deliver(self, callback: Callback | None, value: object, is_error: bool) -> None:
        self.pending -= 1
        if callback is not None:
            callback(value)


async def _invoke(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


class LoopThread:
    """An asyncio loop running forever on a daemon thread, stopped by `stop()`."""

    def __init__(self, name: str = "deskphone-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop is None or self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
