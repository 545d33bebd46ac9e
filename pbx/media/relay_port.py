"""A relay leg's sockets and the per-packet code: `_Port`, `_LegState`, and the relay's value types.

Split from pbx.media.relay (read its docstring for the theory of operation);
`pbx.media.relay` re-exports every public name here. `_Port.datagram_received`
is the hot path: it runs for every datagram, called by the epoll reader
(pbx.media.relay_poll) or by an asyncio transport, so it does as little as
possible: compare the source with the latched one, check the RTP version
(RFC 3550 §5.1), count, send to the precomputed target.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pbx.media.ports import PortPair

if TYPE_CHECKING:
    from pbx.media.relay import RelaySession

log = logging.getLogger("pbx.media.relay")  # one logger name for the whole relay

Address = tuple[Any, ...]
Tap = Callable[["Leg", bytes, float], None]
"""Recorder hook: (leg the packet came from, the whole RTP datagram, arrival time).

It runs on the relay's event loop for every RTP packet of a tapped session, so
it must never block: the recorder appends to a queue and decodes elsewhere.
An exception from the tap is logged once and the tap is removed. The same
shape serves the RTCP tap (`set_rtcp_tap`), which sees RTCP datagrams.
"""
Transcoder = Callable[[bytes], bytes]
"""Rewrites one RTP datagram for the other leg (pbx.media.transcode.PayloadTranscoder)."""


class Leg(enum.Enum):
    """A is the caller side of the call, B the callee side."""

    A = "a"
    B = "b"

    # Members are singletons compared by identity, so the identity hash is a valid one,
    # and a C-level hash: Enum's own hashes the name in Python, for every dict lookup.
    __hash__ = object.__hash__

    @property
    def other(self) -> Leg:
        return Leg.B if self is Leg.A else Leg.A


class Direction(enum.Enum):
    """A leg's media direction as its own SDP states it (RFC 3264 §6.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    __hash__ = object.__hash__  # see Leg


_SENDS = {
    Direction.SENDRECV: True,
    Direction.SENDONLY: True,
    Direction.RECVONLY: False,
    Direction.INACTIVE: False,
}
_RECEIVES = {
    Direction.SENDRECV: True,
    Direction.SENDONLY: False,
    Direction.RECVONLY: True,
    Direction.INACTIVE: False,
}


_DYNAMIC_TYPES = frozenset(range(96, 128))  # RFC 3551 §3: dynamic payload types
_MIN_SIZE = {False: 12, True: 8}  # fixed RTP header (RFC 3550 §5.1); SR/RR with no blocks


class RelayClosed(RuntimeError):
    """The session or relay was used after close()."""


@dataclass(frozen=True, slots=True)
class LocalPorts:
    """Where a leg listens: the B2BUA puts these ports into that leg's SDP."""

    host: str
    rtp: int
    rtcp: int


@dataclass(frozen=True, slots=True)
class LegStats:
    """A snapshot of one leg's counters. "in" = from the phone, "out" = to the phone.

    RTP figures count RTP datagrams only; RTCP has its own packet counts.
    `dropped` counts packets from this phone that were not forwarded (direction,
    no known destination); `rejected` counts datagrams refused outright (not
    version 2, or from a source other than the latched one). `last_packet_at`
    is in relay clock seconds, accurate to one sweep interval.
    """

    packets_in: int
    bytes_in: int
    packets_out: int
    bytes_out: int
    dropped: int
    rejected: int
    last_packet_at: float | None
    latched: Address | None
    rtcp_packets_in: int
    rtcp_packets_out: int
    rtcp_latched: Address | None
    direction: Direction


class _Port(asyncio.DatagramProtocol):
    """One bound UDP socket of a leg; the per-packet code lives here."""

    __slots__ = (
        "session",
        "leg",
        "rtcp",
        "transport",
        "source",
        "sendto",
        "target",
        "forward",
        "packets",
        "octets",
        "dropped",
        "dropped_octets",
        "rejected",
        "latched",
        "stale",
        "seen",
        "last_at",
        "plain",
        "tap",
        "transform",
        "clock",
        "ssrc",
        "retired",
    )

    def __init__(self, session: RelaySession, leg: Leg, rtcp: bool) -> None:
        self.session = session
        self.leg = leg
        self.rtcp = rtcp
        # an asyncio transport, or on the epoll path (relay_poll) the socket itself:
        # both have the sendto and close the relay uses
        self.transport: asyncio.DatagramTransport | socket.socket | None = None
        self.source: Address | None = None  # latched source when the hot path may run
        self.sendto: Callable[..., object] | None = None  # transport or socket sendto
        self.target: Address | None = None
        self.forward = True
        self.packets = 0
        self.octets = 0
        self.dropped = 0
        self.dropped_octets = 0
        self.rejected = 0
        self.latched: Address | None = None
        self.stale = False
        self.seen = 0
        self.last_at: float | None = None
        self.plain = True  # no tap and no transform: forward as received
        self.tap: Tap | None = None
        self.transform: Transcoder | None = None
        self.clock: Callable[[], float] = _no_clock
        self.ssrc = b""  # the SSRC of the datagram that latched the port
        self.retired: Retired | None = None  # a recycled port's previous call (relay_pool)

    def connection_made(self, transport: asyncio.BaseTransport | socket.socket) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.session._relay._transports += 1

    def close(self) -> None:
        """Close the socket; `connection_lost` follows on the loop's next round."""
        transport, self.transport = self.transport, None
        if not isinstance(transport, socket.socket):
            if transport is not None:
                transport.close()
            return
        reader = self.session._relay._reader
        if reader is not None:
            reader.remove(transport)
        transport.close()
        loop = self.session._relay._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon(self.connection_lost, None)
        else:
            self.connection_lost(None)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            if addr == self.source and data[0] >> 6 == 2:
                self.packets += 1
                self.octets += len(data)
                if self.plain:
                    self.sendto(data, self.target)  # type: ignore[misc]
                else:
                    self._featured(data)
                return
        except IndexError:  # an empty datagram; the slow path rejects it
            pass
        self.session._slow_path(self, data, addr)

    def _featured(self, data: bytes) -> None:
        """The hot path of a tapped or transcoded port: tap, rewrite, send."""
        tap = self.tap
        if tap is not None:
            try:
                tap(self.leg, data, self.clock())
            except Exception:
                self.session._tap_failed(self)
        transform = self.transform
        self.sendto(data if transform is None else transform(data), self.target)  # type: ignore[misc]

    def error_received(self, exc: Exception) -> None:
        log.debug("[%s] leg %s socket error: %s", self.session.label, self.leg.value, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session._port_lost(self)


class Retired:
    """What a recycled port remembers of its previous call: who it latched to, and until when.

    `refuses(addr, data, now)` is asked only when a datagram would latch the port
    (the slow path), so the hot path never sees it."""

    __slots__ = ("addr", "ssrc", "until")

    def __init__(self, addr: tuple[Any, ...], ssrc: bytes, until: float) -> None:
        self.addr = addr
        self.ssrc = ssrc
        self.until = until

    def refuses(self, addr: tuple[Any, ...], data: bytes, rtcp: bool, now: float) -> bool:
        """True for the previous call's stream (same source, same SSRC) within the timeout."""
        if addr != self.addr or now >= self.until:
            return False
        return ssrc_of(data, rtcp) == self.ssrc


def ssrc_of(data: bytes, rtcp: bool) -> bytes:
    """The sender's SSRC: RTP fixed header octets 8-11, an RTCP SR/RR's octets 4-7 (RFC 3550)."""
    return data[4:8] if rtcp else data[8:12]


class _LegState:
    """What a session knows about one leg: its ports, SDP remote and direction."""

    __slots__ = (
        "leg", "family", "pair", "host", "rtp", "rtcp", "remote", "direction", "open", "socks"
    )  # fmt: skip

    def __init__(self, leg: Leg, family: int, pair: PortPair, host: str, session: RelaySession):
        self.leg = leg
        self.family = family
        self.pair = pair
        self.host = host
        self.rtp = _Port(session, leg, rtcp=False)
        self.rtcp = _Port(session, leg, rtcp=True)
        self.remote: tuple[Address | None, Address | None] = (None, None)  # (rtp, rtcp) from SDP
        self.direction = Direction.SENDRECV
        self.open = 0
        self.socks: tuple[socket.socket, ...] = ()  # the bound sockets (RTP, RTCP)

    def ports(self) -> tuple[_Port, _Port]:
        return self.rtp, self.rtcp


def _no_clock() -> float:
    raise RelayClosed("the relay has no clock before its first session")
