"""What the user agent tells its owner (the GUI bridge, a test): states and frozen events.

The vocabulary is Blink's, the one softphone users know: a call is dialing,
ringing, early_media, connected, on_hold, ending, ended. Every event is a
frozen slotted dataclass named in the past tense and goes to the ONE
`on_event` callable given to `UserAgent`, on the UA's event loop (the GUI's
bridge re-emits it as a Qt signal; nothing here imports Qt).

`CALL_TRANSITIONS` is the call state machine as data: which state may follow
which. `pbx.ua.call.Call` refuses (and logs) anything else, so a late
response can never bring an ended call back to life.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pbx.ua.call import Call


class UaError(Exception):
    """A call verb failed; `status` is the SIP answer (408 for no answer) when there is one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Account:
    """One SIP account: who we are and the registrar/proxy every request goes to.

    The server is also the outbound proxy (RFC 3261 8.1.2): all requests,
    in-dialog ones included, are sent to (server, port) over `transport`.
    """

    username: str
    password: str
    server: str
    port: int = 5060
    transport: str = "UDP"
    display_name: str = ""
    domain: str | None = None
    """Host part of our AOR and of dialled numbers; the server when None."""

    @property
    def realm_host(self) -> str:
        return self.domain or self.server

    @property
    def aor(self) -> str:
        """Our address of record, sip:user@domain (RFC 3261 10.2.1)."""
        return f"sip:{self.username}@{self.realm_host}"


class CallState(enum.Enum):
    DIALING = "dialing"  # our INVITE is out, nothing back yet (or only 100)
    RINGING = "ringing"  # 180 for an outgoing call; an incoming call waiting for answer()
    EARLY_MEDIA = "early_media"  # 183 with SDP: we hear the far end before the answer
    CONNECTED = "connected"
    ON_HOLD = "on_hold"  # we, the far end, or both put the call on hold
    ENDING = "ending"  # BYE/CANCEL sent, waiting for the answer
    ENDED = "ended"


_S = CallState
CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    _S.DIALING: frozenset({_S.RINGING, _S.EARLY_MEDIA, _S.CONNECTED, _S.ENDING, _S.ENDED}),
    _S.RINGING: frozenset({_S.EARLY_MEDIA, _S.CONNECTED, _S.ENDING, _S.ENDED}),
    _S.EARLY_MEDIA: frozenset({_S.RINGING, _S.CONNECTED, _S.ENDING, _S.ENDED}),
    _S.CONNECTED: frozenset({_S.ON_HOLD, _S.ENDING, _S.ENDED}),
    _S.ON_HOLD: frozenset({_S.CONNECTED, _S.ENDING, _S.ENDED}),
    _S.ENDING: frozenset({_S.ENDED}),
    _S.ENDED: frozenset(),
}
"""Allowed state changes; a missing pair is ignored (a stale message), never applied."""


def can_move(old: CallState, new: CallState) -> bool:
    return new in CALL_TRANSITIONS[old]


class RegistrationState(enum.Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    """The registration moved to `state`; `status`/`reason` are the last answer's
    (None: no answer, e.g. a timeout); `expires` is what the registrar granted."""

    state: RegistrationState
    status: int | None = None
    reason: str = ""
    expires: int | None = None


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """An INVITE arrived: answer with `await call.answer()` or `await call.reject(486)`."""

    call: Call
    remote_uri: str
    display_name: str


@dataclass(frozen=True, slots=True)
class OutgoingCall:
    """`UserAgent.call()` placed a call; it starts in state dialing."""

    call: Call
    remote_uri: str


@dataclass(frozen=True, slots=True)
class CallStateChanged:
    """`call` went from `old` to `new`. `status`/`reason` carry the SIP answer that
    caused it (486 Busy Here, 200 OK...) or a plain-words reason ("remote hold")."""

    call: Call
    old: CallState
    new: CallState
    status: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HoldChanged:
    """The hold flags of `call` changed: `local` (we sent sendonly/inactive) and
    `remote` (the far end's SDP asks us not to send, RFC 3264 8.4)."""

    call: Call
    local: bool
    remote: bool


@dataclass(frozen=True, slots=True)
class DtmfReceived:
    """A key press from the far end, by RFC 4733 ("rfc4733") or SIP INFO ("info")."""

    call: Call
    digit: str
    method: str
    duration_ms: int | None = None


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """The far end reported on our REFER (RFC 3515 NOTIFY with a message/sipfrag
    status line): `status` 100/180 while trying, 200 done, >= 300 failed; the REFER
    itself refused gives its own final status."""

    call: Call
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """The far end asked us to call `target` (incoming REFER, RFC 3515)."""

    call: Call
    target: str
    replaces: str | None


UaEvent = (
    RegistrationChanged
    | IncomingCall
    | OutgoingCall
    | CallStateChanged
    | HoldChanged
    | DtmfReceived
    | TransferProgress
    | TransferRequested
)
