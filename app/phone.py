"""What the window knows about the softphone: plain values, and the `Phone` it drives.

The window never touches `pbx.ua` objects (they live on the PBX thread's
loop). `Phone` is the narrow, async interface the GUI needs; `UaPhone`
(app/ua_phone.py) implements it over `pbx.ua.UserAgent`, and the GUI unit
tests use a fake. Every call is named by a short string key, and every
change reaches the GUI as one of the frozen events below, built on the PBX
thread and re-emitted by the bridge as a Qt signal (design.md: GUI <-> PBX).

Call and registration states carry the UA's vocabulary and values (Blink's:
dialing, ringing, early_media, connected, on_hold, ending, ended) but are
the GUI's own enums: the window imports no part of pbx/, so it can be shown
before the PBX and the user agent are even imported (launch time).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class CallState(enum.Enum):
    """pbx.ua.events.CallState by value."""

    DIALING = "dialing"
    RINGING = "ringing"
    EARLY_MEDIA = "early_media"
    CONNECTED = "connected"
    ON_HOLD = "on_hold"
    ENDING = "ending"
    ENDED = "ended"


class RegistrationState(enum.Enum):
    """pbx.ua.events.RegistrationState by value, plus STARTING (no UA yet)."""

    STARTING = "starting"
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"
    FAILED = "failed"


__all__ = [
    "CallDirection", "CallState", "CallUpdated", "CallView", "PbxStatus", "Phone",
    "PhoneEvent", "RegistrationState", "RegistrationUpdated", "Notice",
]  # fmt: skip


class CallDirection(enum.Enum):
    OUTGOING = "outgoing"
    INCOMING = "incoming"


LIVE_STATES = frozenset(
    {CallState.DIALING, CallState.RINGING, CallState.EARLY_MEDIA, CallState.CONNECTED,
     CallState.ON_HOLD, CallState.ENDING}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CallView:
    """A snapshot of one call, safe to hand to the GUI thread."""

    key: str
    remote: str
    direction: CallDirection
    state: CallState
    display_name: str = ""
    on_hold: bool = False
    remote_hold: bool = False
    muted: bool = False
    answered_at: float | None = None
    """Monotonic seconds when the call connected (the panel's timer starts there)."""
    reason: str = ""

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def ringing_in(self) -> bool:
        """An incoming call waiting for the user to answer or reject it."""
        return self.direction is CallDirection.INCOMING and self.state is CallState.RINGING


@dataclass(frozen=True, slots=True)
class CallUpdated:
    view: CallView


@dataclass(frozen=True, slots=True)
class RegistrationUpdated:
    state: RegistrationState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PbxStatus:
    """The embedded PBX at a glance (status bar); `running` False for an external PBX."""

    running: bool
    phones_registered: int = 0
    calls_in_progress: int = 0


@dataclass(frozen=True, slots=True)
class Notice:
    """A line for the status bar: a transfer's progress, a failed action."""

    text: str


PhoneEvent = CallUpdated | RegistrationUpdated | PbxStatus | Notice


class Phone(Protocol):
    """The softphone as the GUI drives it; every method runs on the PBX loop."""

    async def dial(self, target: str) -> str:
        """Place a call to an extension, a number or a sip: URI; returns its key."""
        ...

    async def answer(self, key: str) -> None: ...

    async def reject(self, key: str) -> None: ...

    async def hangup(self, key: str) -> None: ...

    async def hold(self, key: str) -> None: ...

    async def resume(self, key: str) -> None: ...

    async def set_muted(self, key: str, muted: bool) -> None: ...

    async def send_dtmf(self, key: str, digits: str) -> None: ...

    async def transfer(self, key: str, target: str) -> None:
        """Blind transfer (REFER, RFC 3515)."""
        ...

    async def attended_transfer(self, key: str, other_key: str) -> None:
        """Join the far ends of two of our calls (REFER with Replaces, RFC 5589 7)."""
        ...

    async def aclose(self) -> None:
        """End every call (BYE/CANCEL/reject) and unregister."""
        ...
