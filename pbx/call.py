"""One bridged call as data: the caller's leg, the forks towards the callee, times, outcome.

The B2BUA (pbx.b2bua) moves calls along; this module only says what a call
holds and how its outcome becomes a CDR row, so both stay small. Vocabulary:
leg A is the caller's dialog (we are its UAS), leg B the callee's (we are its
UAC); while the callee's phones ring, each of their registered contacts has a
`Fork`, and the first to answer becomes leg B.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from pbx.media.relay import Leg, RelaySession
from pbx.media.transcode import TranscodeError, transcoders_for_call
from pbx.sip.dialog import AnswerRetransmitter, Dialog, DialogSet, LocalEndpoint, new_branch
from pbx.sip.entropy import random_bytes
from pbx.sip.errors import ParseError
from pbx.sip.message import Request, Response
from pbx.sip.sdp import (
    AUXILIARY,
    Codec,
    LocalSession,
    SessionDescription,
    rewrite_for_relay,
    settled_law,
    with_other_law,
)
from pbx.sip.transaction import ClientKey, TransactionKey
from pbx.store import Binding, Cdr, Disposition, HangupSide, RecordPolicy

Address = tuple[str, int]

#: The methods the PBX takes, in Allow headers (RFC 3261 20.5).
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, REGISTER"
SDP_TYPE = "application/sdp"


class CallState(enum.Enum):
    """Where a call is, in the words a softphone shows (Blink's call states)."""

    DIALING = "dialing"
    RINGING = "ringing"
    EARLY_MEDIA = "early_media"
    CONNECTED = "connected"
    ENDING = "ending"
    ENDED = "ended"


class Side(enum.Enum):
    A = "caller"
    B = "callee"

    @property
    def other(self) -> Side:
        return Side.B if self is Side.A else Side.A

    @property
    def leg(self) -> Leg:
        """The relay leg that carries this side's media."""
        return Leg.A if self is Side.A else Leg.B


@dataclass(slots=True)
class Peer:
    """Where one leg's phone is reached: its flow (source address + transport) and our face."""

    destination: Address
    transport: str
    local: LocalEndpoint
    media_host: str  # the address we advertise in this leg's SDP


@dataclass(slots=True)
class Fork:
    """One INVITE towards one registered contact of the callee."""

    binding: Binding
    invite: Request
    tx: ClientKey
    peer: Peer
    final: Response | None = None
    timed_out: bool = False
    #: Any response came, 100 Trying included (a trunk's silent server is passed over).
    heard: bool = False


@dataclass(slots=True)
class Forwarded:
    """An in-dialog request passed to the other leg, waiting for that leg's answer."""

    call: Call
    from_side: Side
    server_tx: TransactionKey | None
    request: Request


@dataclass(slots=True)
class Call:
    label: str
    caller: str
    callee: str
    a_invite: Request
    a_tx: TransactionKey
    a_peer: Peer
    a_tag: str
    a_offer: SessionDescription
    start: float
    x_headers: dict[str, str]
    state: CallState = CallState.DIALING
    relay: RelaySession | None = None
    forks: dict[ClientKey, Fork] = field(default_factory=dict)
    b_dialogs: DialogSet = field(default_factory=DialogSet)
    a_dialog: Dialog | None = None
    b_dialog: Dialog | None = None
    b_peer: Peer | None = None
    a_final_sent: bool = False
    answer: float | None = None
    end: float | None = None
    disposition: Disposition | None = None
    sip_code: int = 0
    sip_reason: str = ""
    hangup_side: HangupSide = HangupSide.SYSTEM
    retransmitters: dict[int, tuple[AnswerRetransmitter, Response]] = field(default_factory=dict)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    media_stats: dict[str, dict[str, object]] | None = None
    route_record_policy: RecordPolicy | None = None  # the outbound route's, when one was used
    sessions: dict[Side, LocalSession] = field(default_factory=dict)
    #: The recording's path for the CDR (pbx.recording.RecordingManager.on_call_ended).
    recording: str | None = None
    #: The row id of the call's CDR once it is stored or queued (pbx.store.cdrs).
    cdr_id: int | None = None
    #: Click-to-call: leg A is our own INVITE to the caller's phones (pbx.b2bua_control),
    #: ringing as `a_forks`; no response is ever sent on `a_tx`.
    originated: bool = False
    a_forks: dict[ClientKey, Fork] = field(default_factory=dict)
    a_dialogs: DialogSet = field(default_factory=DialogSet)
    #: Blind transfer: leg B is being replaced while leg A stays up.
    rerouting: bool = False
    #: INVITEs sent towards callees so far: numbers each fork's Call-ID, also across transfers.
    forks_sent: int = 0
    #: The voice codec and telephone-event type leg A settled on; a transfer's new leg B may
    #: answer the other G.711 law, and the relay then transcodes (pbx.b2bua_control).
    a_codec: Codec | None = None
    a_events: int | None = None
    #: The Reason header (RFC 3326) of the caller's CANCEL, passed on to the forks' CANCELs:
    #: "Call completed elsewhere" from a carrier keeps it off the phones' missed calls.
    cancel_reason: str | None = None
    #: The latest SDP each side's phone sent, offer or answer: what a transfer target is
    #: offered, and whether the transferee was left on hold (pbx.b2bua_refer).
    last_sdp: dict[Side, SessionDescription] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    @property
    def answered(self) -> bool:
        return self.answer is not None

    @property
    def a_waits(self) -> bool:
        """Leg A still expects our answer on `a_tx` (a call a phone placed, not rerouted)."""
        return not (self.originated or self.rerouting)

    def dialog(self, side: Side) -> Dialog | None:
        return self.a_dialog if side is Side.A else self.b_dialog

    def peer(self, side: Side) -> Peer | None:
        return self.a_peer if side is Side.A else self.b_peer

    def sdp_towards(self, side: Side, sdp: SessionDescription, media_host: str) -> bytes:
        """The other phone's `sdp` as the phone on `side` gets it: the relay's address and
        that leg's port, stamped with one o= identity of ours per side whose version goes up
        only when the description changes (RFC 3264 8; forks and re-INVITEs keep it)."""
        assert self.relay is not None
        session = self.sessions.get(side)
        if session is None:
            session = LocalSession(media_host, _session_id())
            self.sessions[side] = session
        port = self.relay.local(side.leg).rtp
        body = rewrite_for_relay(sdp, media_host, port, origin=session.origin)
        return bytes(session.describe(body))

    def offer_towards(self, side: Side, offer: SessionDescription, media_host: str) -> bytes:
        """The other phone's SDP offer as the phone on `side` gets it: through the relay, and
        listing the G.711 law the offerer left out (pbx.sip.sdp.with_other_law)."""
        return self.sdp_towards(side, with_other_law(offer), media_host)

    def answer_towards(
        self, side: Side, answer: SessionDescription, offer: SessionDescription, media_host: str
    ) -> bytes:
        """The other phone's SDP `answer` to `offer` (what the phone on `side` offered, as it
        sent it) as that phone gets it. When the answerer took the G.711 law the offer left
        out, the phone on `side` is answered in its own law and the relay converts."""
        delivered, mine, theirs = settled_law(answer, offer)
        if mine is not None and theirs is not None:
            self.settle(side, mine, theirs, voice_codec(answer)[1])
        return self.sdp_towards(side, delivered, media_host)

    def settle(self, side: Side, mine: Codec, theirs: Codec, events: int | None) -> None:
        """The phone on `side` now sends and expects `mine`, the other phone `theirs` (the
        latest offer/answer, RFC 3264 8): the relay transcodes when they differ and stops
        when they agree again. `events` is the telephone-event type both were given."""
        a, b = (mine, theirs) if side is Side.A else (theirs, mine)
        self.a_codec, self.a_events = a, events
        if self.relay is None:
            return
        try:
            pair = transcoders_for_call(a, b, events, events)
        except TranscodeError:  # settled_law only pairs the two laws: not reached
            return
        self.relay.set_transcoders(*pair)

    def set_remote(self, leg: Leg, sdp: SessionDescription) -> bool:
        """Point the relay's `leg` at the audio address of `sdp` (RFC 4566 c=/m=).

        False when `sdp` names none the relay can use: no active audio stream, a host
        name rather than an IP literal (RFC 8866 allows one in c=), or the other IP
        family than the leg's ports. A c=0.0.0.0 hold (RFC 2543) keeps the latched address.
        """
        media = next((m for m in sdp.media if m.kind == "audio" and m.port), None)
        connection = sdp.connection_for(media) if media else None
        if self.relay is None or media is None or connection is None:
            return False
        if connection.is_hold:
            return True
        rtcp = media.rtcp.port if media.rtcp else None
        try:
            self.relay.set_remote(leg, connection.address, media.port, rtcp)
        except ValueError:
            return False
        return True

    def pending_forks(self) -> list[Fork]:
        return [f for f in self.forks.values() if f.final is None and not f.timed_out]

    def to_cdr(self) -> Cdr:
        assert self.end is not None and self.disposition is not None
        return Cdr.from_times(
            call_id=self.a_invite.call_id,
            caller=self.caller,
            callee=self.callee,
            start=self.start,
            answer=self.answer,
            end=self.end,
            disposition=self.disposition,
            sip_code=self.sip_code,
            sip_reason=self.sip_reason,
            hangup_side=self.hangup_side,
            x_headers=dict(self.x_headers),
            media_stats=self.media_stats,
            recording=self.recording,
            id=self.cdr_id,
        )


def _session_id() -> int:
    """A random o= session id in 1..2**31 (RFC 8866 5.2 asks for an NTP-like unique number;
    31 bits keep it a positive int32 for picky phones), from the pooled OS entropy."""
    return (int.from_bytes(random_bytes(4), "big") & 0x7FFFFFFF) + 1


#: How a callee's final answer is reported in the CDR, in FreePBX terms. 600 and 603
#: (Decline, a phone's "reject" key) count as BUSY as they do in Asterisk's chan_sip, which
#: signals busy for 486/600/603, so FreePBX users see a declined call as BUSY and it takes
#: the busy destination; other failures are FAILED.
DISPOSITION_BY_STATUS: dict[int, Disposition] = {
    486: Disposition.BUSY,
    600: Disposition.BUSY,
    603: Disposition.BUSY,
    408: Disposition.NO_ANSWER,
    480: Disposition.NO_ANSWER,
    487: Disposition.CANCELLED,
}


def disposition_for(status: int) -> Disposition:
    if 200 <= status < 300:
        return Disposition.ANSWERED
    return DISPOSITION_BY_STATUS.get(status, Disposition.FAILED)


def best_final(responses: list[Response]) -> Response | None:
    """The response to pass back when every fork failed (RFC 3261 §16.7 step 6, simplified).

    A 6xx wins; then busy (486) over other 4xx, since a busy phone is the most
    useful thing to tell a caller; then the lowest class, then the lowest code.
    408/timeouts are reported as 480 by the caller of this function.
    """
    if not responses:
        return None
    six = [r for r in responses if r.status >= 600]
    if six:
        return six[0]
    busy = [r for r in responses if r.status == 486]
    if busy:
        return busy[0]
    return min(responses, key=lambda r: (r.status // 100, r.status))


def fork_invite(call: Call, contact: str, peer: Peer, sdp: bytes, user_agent: str) -> Request:
    """The INVITE one fork sends to one registered `contact` of the callee (RFC 3261 8.1.1).

    A dialog of our own: a Call-ID per fork, the caller's number and display name in From
    with the leg A tag, the caller's X- headers, and Max-Forwards one below the caller's,
    so that a loop through the PBX ends like one through a proxy (RFC 7332, 16.6 step 3).
    """
    a = call.a_invite
    shown = None if call.originated else a.from_.display  # ours shows the callee's number
    display = (shown or "").replace("\\", "\\\\").replace('"', '\\"')
    caller_id = f'"{display}" ' if display else ""
    here = peer.local.sent_by
    max_forwards = 70 if a.max_forwards is None else min(70, a.max_forwards)
    headers = [
        # The branch is ours to pick (8.1.1.7): with it the core need not parse and rewrite
        # the Via to add one before the INVITE leaves.
        ("Via", f"SIP/2.0/{peer.transport} {here};branch={new_branch()}"),
        ("Max-Forwards", str(max(0, max_forwards - 1))),
        ("From", f"{caller_id}<sip:{call.caller}@{here}>;tag={call.a_tag}"),
        ("To", f"<sip:{call.callee}@{here}>"),
        ("Call-ID", f"{call.label}-{call.forks_sent}@deskpbx"),
        ("CSeq", "1 INVITE"),
        ("Contact", peer.local.contact),
        ("Allow", ALLOW),
        ("User-Agent", user_agent),
        *call.x_headers.items(),
        ("Content-Type", "application/sdp"),
    ]
    return Request("INVITE", contact, headers, sdp)


def sdp_of(message: Request | Response | None) -> SessionDescription | None:
    """The SDP body of a message, or None when it has none or it does not parse."""
    if message is None or not message.body or message.content_type != "application/sdp":
        return None
    try:
        return SessionDescription.parse(message.body)
    except ParseError:
        return None


def media_stats(call: Call) -> dict[str, dict[str, object]]:
    """Per-side relay counters for the CDR: what each phone sent ("in") and was sent ("out"),
    and, when the relay measured it, the quality of what that phone sent (RFC 3550 A.8
    jitter, loss, RTCP round trip, estimated MOS: pbx.media.leg_stats)."""
    assert call.relay is not None
    quality = getattr(call.relay, "quality_summary", lambda: None)() or {}
    out: dict[str, dict[str, object]] = {}
    for side in Side:
        stats = call.relay.stats(side.leg)
        out[side.value] = {
            "packets_in": stats.packets_in,
            "packets_out": stats.packets_out,
            "bytes_in": stats.bytes_in,
            "bytes_out": stats.bytes_out,
            "rtcp_in": stats.rtcp_packets_in,
            "rtcp_out": stats.rtcp_packets_out,
            "latched": list(stats.latched[:2]) if stats.latched else None,
        }
        if side.leg in quality:
            out[side.value]["quality"] = quality[side.leg]
    return out


def is_x_header(name: str) -> bool:
    """Extension headers the PBX carries to the callee and the CDR, in any letter case."""
    return name[:2] in _X_PREFIXES


_X_PREFIXES = frozenset({"X-", "x-"})


def voice_codec(sdp: SessionDescription) -> tuple[Codec | None, int | None]:
    """The first voice codec of the first active audio stream, and its telephone-event payload
    type (RFC 4733 7.1.1): what an answer settles a leg on (RFC 3264 6.1: the first listed)."""
    media = next((m for m in sdp.media if m.kind == "audio" and m.port), None)
    codecs = media.codecs() if media is not None else ()
    voice = next((c for c in codecs if c.name.lower() not in AUXILIARY), None)
    events = next((c.payload_type for c in codecs if c.name.lower() == "telephone-event"), None)
    return voice, events
