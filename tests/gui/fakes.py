"""A fake `Phone` for window tests: records what the GUI asked, and lets the test
play the far end by publishing events."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

from app.phone import CallDirection, CallState, CallUpdated, CallView


class FakePhone:
    def __init__(self) -> None:
        self.actions: list[tuple[str, ...]] = []
        self.publish: Callable[[object], None] = lambda event: None
        self.calls: dict[str, CallView] = {}
        self._keys = (f"c{i}" for i in itertools.count(1))
        self.now = 100.0

    def _set(self, key: str, **changes: object) -> CallView:
        view = replace(self.calls[key], **changes)  # type: ignore[arg-type]
        self.calls[key] = view
        self.publish(CallUpdated(view))
        return view

    # -- the far end, driven by the test (from any thread) ------------------------------

    def ring_in(self, remote: str, display_name: str = "") -> str:
        key = next(self._keys)
        self.calls[key] = CallView(key, remote, CallDirection.INCOMING, CallState.RINGING,
                                   display_name=display_name)  # fmt: skip
        self.publish(CallUpdated(self.calls[key]))
        return key

    def far_end_answers(self, key: str) -> None:
        self._set(key, state=CallState.CONNECTED, answered_at=self.now)

    # -- Phone -------------------------------------------------------------------------

    async def dial(self, target: str) -> str:
        self.actions.append(("dial", target))
        key = next(self._keys)
        self.calls[key] = CallView(key, target, CallDirection.OUTGOING, CallState.DIALING)
        self.publish(CallUpdated(self.calls[key]))
        return key

    async def answer(self, key: str) -> None:
        self.actions.append(("answer", key))
        self._set(key, state=CallState.CONNECTED, answered_at=self.now)

    async def reject(self, key: str) -> None:
        self.actions.append(("reject", key))
        self._set(key, state=CallState.ENDED, reason="rejected")

    async def hangup(self, key: str) -> None:
        self.actions.append(("hangup", key))
        self._set(key, state=CallState.ENDED)

    async def hold(self, key: str) -> None:
        self.actions.append(("hold", key))
        self._set(key, state=CallState.ON_HOLD, on_hold=True)

    async def resume(self, key: str) -> None:
        self.actions.append(("resume", key))
        self._set(key, state=CallState.CONNECTED, on_hold=False)

    async def set_muted(self, key: str, muted: bool) -> None:
        self.actions.append(("mute", key, str(muted)))
        self._set(key, muted=muted)

    async def send_dtmf(self, key: str, digits: str) -> None:
        self.actions.append(("dtmf", key, digits))

    async def transfer(self, key: str, target: str) -> None:
        self.actions.append(("transfer", key, target))
        self._set(key, state=CallState.ENDED, reason=f"transferred to {target}")

    async def attended_transfer(self, key: str, other_key: str) -> None:
        self.actions.append(("attended", key, other_key))
        self._set(key, state=CallState.ENDED, reason="transferred")
        self._set(other_key, state=CallState.ENDED, reason="transferred")

    async def aclose(self) -> None:
        self.actions.append(("aclose",))
        for key, view in list(self.calls.items()):
            if view.live:
                self._set(key, state=CallState.ENDED)
