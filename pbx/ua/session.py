"""One call's SDP offer/answer state, as the user agent sees it (RFC 3264; sans-IO).

`MediaSession` builds our offers and answers for one audio stream at our RTP
address, stamps them with one `LocalSession` origin (the version goes up only
when the body changes, RFC 3264 8) and turns the far end's description into
`Negotiated`: where to send, which voice codec and which telephone-event
payload type (RFC 4733 7.1) to use, and the directions both sides asked for.

Hold is a direction (RFC 3264 8.4): we put the far end on hold by offering
sendonly (inactive when the far end already holds us), and the far end holds
us when its description says it will not receive (sendonly, inactive or the
RFC 2543 c=0.0.0.0). `Negotiated.we_send` combines both; the media layer
reads nothing else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pbx.sip.sdp import (
    AUXILIARY,
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    AudioPolicy,
    Codec,
    Direction,
    LocalSession,
    Media,
    NoCommonCodec,
    SessionDescription,
    make_answer,
    make_offer,
)

DEFAULT_CODECS: tuple[Codec, ...] = (PCMU, PCMA, TELEPHONE_EVENT)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The outcome of one offer/answer exchange for the audio stream."""

    remote_host: str
    remote_port: int
    codec: Codec
    """The voice codec we send (the first one of the answer, RFC 3264 6.1)."""
    dtmf_payload_type: int | None
    """telephone-event's payload type when both sides have it, else None (use INFO)."""
    local: Direction
    remote: Direction

    @property
    def we_send(self) -> bool:
        return self.local.sends and self.remote.receives and self.remote_port != 0

    @property
    def held_by_remote(self) -> bool:
        """The far end will not receive: it put us on hold (RFC 3264 8.4)."""
        return not self.remote.receives

    @property
    def held_locally(self) -> bool:
        """We put the far end on hold: we said we will not receive (sendonly/inactive)."""
        return not self.local.receives


class MediaSession:
    """Offers and answers for one call's single audio stream at (address, port)."""

    def __init__(
        self,
        address: str,
        port: int,
        codecs: tuple[Codec, ...] = DEFAULT_CODECS,
        *,
        session_id: int | None = None,
        username: str = "-",
    ) -> None:
        self.address = address
        self.port = port
        self.codecs = codecs
        sid = session_id if session_id is not None else secrets.randbits(31) + 1
        self.local = LocalSession(address, sid, username=username)
        self.negotiated: Negotiated | None = None
        self.hold = False
        """We hold the far end: our next offer or answer is sendonly/inactive."""
        self._remote_receives = True

    def _direction(self) -> Direction:
        if not self.hold:
            return Direction.SENDRECV
        # Held by both sides: inactive (RFC 3264 8.4, 6228-style mutual hold).
        return Direction.SENDONLY if self._remote_receives else Direction.INACTIVE

    def _policy(self) -> AudioPolicy:
        return AudioPolicy(codecs=self.codecs, direction=self._direction())

    def offer(self) -> bytes:
        """Our offer (initial INVITE or re-INVITE), direction set by `hold`."""
        sd = self.local.describe(make_offer(self.address, self.port, self._policy()))
        return bytes(sd)

    def answer(self, offer: bytes) -> bytes:
        """Our answer to the far end's offer; raises NoCommonCodec (-> 488) or ParseError."""
        theirs = SessionDescription.parse(offer)
        ours = self.local.describe(make_answer(theirs, self.address, self.port, self._policy()))
        self.negotiated = _negotiated(ours, theirs, local_answers=True)
        self._remote_receives = self.negotiated.remote.receives
        return bytes(ours)

    def answer_received(self, answer: bytes) -> Negotiated:
        """Apply the far end's answer to our last offer; raises NoCommonCodec or ParseError."""
        theirs = SessionDescription.parse(answer)
        self.negotiated = _negotiated(None, theirs, local_answers=False, session=self)
        self._remote_receives = self.negotiated.remote.receives
        return self.negotiated


def _audio(sd: SessionDescription) -> Media | None:
    return next((m for m in sd.media if m.kind == "audio" and m.port != 0 and m.is_rtp), None)


def _negotiated(
    ours: SessionDescription | None,
    theirs: SessionDescription,
    *,
    local_answers: bool,
    session: MediaSession | None = None,
) -> Negotiated:
    """Read the agreed stream. When we answered, the codecs are in our answer; when we
    offered, in theirs (which uses the payload numbers of our offer, RFC 3264 6.1)."""
    remote = _audio(theirs)
    agreed = _audio(ours) if local_answers and ours is not None else remote
    if remote is None or agreed is None:
        raise NoCommonCodec(())
    codecs = agreed.codecs()
    if session is not None:  # keep only codecs we offered
        codecs = tuple(c for c in codecs if any(c.same_codec(o) for o in session.codecs))
    voice = [c for c in codecs if c.name.lower() not in AUXILIARY]
    if not voice:
        raise NoCommonCodec(codecs)
    dtmf = next((c for c in codecs if c.name.lower() == "telephone-event"), None)
    conn = theirs.connection_for(remote)
    host = conn.address if conn is not None else ""
    if local_answers and ours is not None:
        local = ours.direction_for(agreed)
    else:
        local = session._direction() if session is not None else Direction.SENDRECV
    return Negotiated(
        remote_host=host,
        remote_port=remote.port,
        codec=voice[0],
        dtmf_payload_type=None if dtmf is None else dtmf.payload_type,
        local=local,
        remote=theirs.direction_for(remote),
    )
