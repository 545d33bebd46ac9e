"""`UaPhone`: the window's `Phone` over `pbx.ua` (runs on the PBX thread's loop).

The user agent emits events about `pbx.ua.call.Call` objects; this adapter
keeps those objects on the loop, names each call by a short key, and
publishes `CallView` snapshots, which are safe to hand to the GUI thread.
`on_event` is the one callable given to `UserAgent(on_event=...)`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from app.phone import (
    CallDirection,
    CallUpdated,
    CallView,
    Notice,
    RegistrationUpdated,
)
from app.phone import CallState as ViewState
from app.phone import RegistrationState as ViewRegistration
from pbx.ua.events import (
    CallState,
    CallStateChanged,
    DtmfReceived,
    HoldChanged,
    IncomingCall,
    OutgoingCall,
    RegistrationChanged,
    RegistrationState,
    TransferProgress,
    TransferRequested,
)

log = logging.getLogger(__name__)

Publish = Callable[[object], None]


class AudioDevice(Protocol):
    """What a call needs from a sound device (app.audio): 8 kHz frames in and out."""

    def read_microphone(self) -> Any: ...

    def play(self, frame: Any) -> None: ...

    def idle(self) -> None:
        """No call needs audio any more (close the stream)."""
        ...


def short_remote(uri: str, home: str) -> str:
    """'sip:1002@pbx.local' -> '1002' when pbx.local is our server; else 'bob@example.com'."""
    bare = uri.split(":", 1)[1] if uri.lower().startswith(("sip:", "sips:", "tel:")) else uri
    bare = bare.split(";", 1)[0].split("?", 1)[0]
    user, at, host = bare.partition("@")
    if at and host.split(":", 1)[0].lower() == home.lower():
        return user
    return bare


class UaPhone:
    """Implements app.phone.Phone; `ua` is set once the UserAgent exists."""

    def __init__(
        self,
        publish: Publish,
        home: str,
        *,
        who: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.publish = publish
        self.home = home
        self.who = who
        """How the status bar names our account once registered, e.g. '1000 on 127.0.0.1'."""
        self.clock = clock
        self.ua: Any = None
        self.audio: AudioDevice | None = None
        """The sound device every connected call uses (None: silence, nothing played)."""
        self._calls: dict[str, Any] = {}
        self._keys: dict[int, str] = {}
        self._next = (f"call-{i}" for i in itertools.count(1))

    # ------------------------------------------------------------------ views

    def key_of(self, call: Any) -> str:
        key = self._keys.get(id(call))
        if key is None:
            key = self._keys[id(call)] = next(self._next)
            self._calls[key] = call
        return key

    def view(self, call: Any, reason: str = "") -> CallView:
        connected = call.state in (CallState.CONNECTED, CallState.ON_HOLD)
        answered_at = self.clock() - call.duration if connected else None
        direction = CallDirection(call.direction)
        return CallView(
            key=self.key_of(call),
            remote=short_remote(call.remote_uri, self.home),
            direction=direction,
            state=ViewState(call.state.value),
            display_name=call.display_name or "",
            on_hold=bool(call.local_hold),
            remote_hold=bool(call.remote_hold),
            muted=bool(call.muted),
            answered_at=answered_at,
            reason=reason,
        )

    def _publish_call(self, call: Any, reason: str = "") -> None:
        if self.audio is not None and call.state is CallState.CONNECTED:
            call.set_source(self.audio.read_microphone)
            call.set_sink(self.audio.play)
        self.publish(CallUpdated(self.view(call, reason)))
        if call.state is CallState.ENDED:
            key = self._keys.pop(id(call), None)
            self._calls.pop(key or "", None)
            if self.audio is not None and not self._calls:
                self.audio.idle()

    # ------------------------------------------------------------------ events

    def on_event(self, event: object) -> None:
        """The UA's events, on its loop; each becomes a GUI-safe event."""
        try:
            handler = _EVENT_HANDLERS.get(type(event))
            if handler is not None:
                handler(self, event)
        except Exception:  # an observer failure must never break the UA
            log.exception("could not publish %r", event)

    def _on_registration(self, event: RegistrationChanged) -> None:
        if event.state is RegistrationState.REGISTERED:
            detail = self.who
        elif event.status:
            detail = f"{event.status} {event.reason}".strip()
        else:
            detail = event.reason if event.state is RegistrationState.FAILED else ""
        self.publish(RegistrationUpdated(ViewRegistration(event.state.value), detail))

    def _on_incoming(self, event: IncomingCall | OutgoingCall) -> None:
        self._publish_call(event.call)

    def _on_state(self, event: CallStateChanged) -> None:
        reason = ""
        if event.new is CallState.ENDED and event.status and event.status >= 300:
            reason = f"{event.status} {event.reason}".strip()
        self._publish_call(event.call, reason)

    def _on_hold(self, event: HoldChanged) -> None:
        self._publish_call(event.call)

    def _on_transfer(self, event: TransferProgress) -> None:
        words = "done" if 200 <= event.status < 300 else event.reason
        self.publish(Notice(f"Transfer: {event.status} {words}"))

    def _on_dtmf(self, event: DtmfReceived) -> None:
        return None

    def _on_transfer_requested(self, event: TransferRequested) -> None:
        self.publish(Notice(f"The other side asked to transfer us to {event.target}"))

    # ------------------------------------------------------------------ Phone

    def _call(self, key: str) -> Any:
        call = self._calls.get(key)
        if call is None:
            raise LookupError(f"no call {key} (it has ended)")
        return call

    async def dial(self, target: str) -> str:
        call = await self.ua.call(target)
        key = self.key_of(call)
        self._publish_call(call)
        return key

    async def answer(self, key: str) -> None:
        await self._call(key).answer()

    async def reject(self, key: str) -> None:
        await self._call(key).reject(486)

    async def hangup(self, key: str) -> None:
        await self._call(key).hangup()

    async def hold(self, key: str) -> None:
        await self._call(key).hold()

    async def resume(self, key: str) -> None:
        await self._call(key).resume()

    async def set_muted(self, key: str, muted: bool) -> None:
        call = self._call(key)
        call.mute(muted)
        self._publish_call(call)

    async def send_dtmf(self, key: str, digits: str) -> None:
        await self._call(key).send_dtmf(digits)

    async def transfer(self, key: str, target: str) -> None:
        await self._call(key).transfer(target)

    async def attended_transfer(self, key: str, other_key: str) -> None:
        await self._call(key).attended_transfer(self._call(other_key))

    async def aclose(self) -> None:
        for call in list(self._calls.values()):
            try:
                if call.state is CallState.RINGING and call.direction == "incoming":
                    await call.reject(486)
                elif call.state is not CallState.ENDED:
                    await call.hangup()
            except Exception as exc:  # keep closing the others
                log.info("while closing %r: %s", call, exc)
        if self.ua is not None:
            await self.ua.aclose()


_EVENT_HANDLERS: dict[type, Callable[[UaPhone, Any], None]] = {
    RegistrationChanged: UaPhone._on_registration,
    IncomingCall: UaPhone._on_incoming,
    OutgoingCall: UaPhone._on_incoming,
    CallStateChanged: UaPhone._on_state,
    HoldChanged: UaPhone._on_hold,
    TransferProgress: UaPhone._on_transfer,
    DtmfReceived: UaPhone._on_dtmf,
    TransferRequested: UaPhone._on_transfer_requested,
}
