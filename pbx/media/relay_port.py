"""A relay leg's sockets and the per-packet code: `_Port`, `_LegState`, and the relay's value types.

Split from pbx.media.relay (read its docstring for the theory of operation);
`pbx.media.relay` re-exports every public name here. `_Port.datagram_received`
is the hot path: it runs for every datagram, called by the epoll reader
(pbx.media.relay_poll) or by an asyncio transport, so it does as little as
possible: compare the source with the latched one, check the RTP version
(RFC 3550 §5.1), count, send to the precomputed target. On the epoll path
that send goes through a socket connected to the receiving phone (the
latched port's twin, see `_Port.source`), so the kernel needs no route
lookup and Python no address conversion per datagram.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pbx.media.ports import PortPair

try:
    import resource
except ImportError:  # not on Windows; nor is the epoll reader that twins need
    _TWINS = False
else:
    _TWINS = hasattr(socket, "SO_REUSEPORT")

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
        "_source",
        "_sendto",
        "_target",
        "_send",
        "_to",
        "_twin",
        "_twin_peer",
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
        self._twin: socket.socket | None = None  # see `source`
        self._twin_peer: Address | None = None
        self._source: Address | None = None  # latched source when the hot path may run
        self._sendto: Callable[..., object] | None = None  # transport or socket sendto
        self._target: Address | None = None
        self._send: Callable[..., object] | None = None  # what the hot path calls ...
        self._to: Address | int | None = None  # ... with this second argument
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

    # ---- hot-path fields, set by pbx.media.relay._wire -------------------------

    @property
    def source(self) -> Address | None:
        """The latched source while the hot path may run, else None.

        On the epoll path an RTP port whose hot path is armed also gets a *twin*: a
        second socket bound to the same port (SO_REUSEPORT) and connected to the
        latched source. The kernel hands a connected socket exactly the datagrams
        from its peer and the unconnected one everything else, so the latched
        phone's datagrams arrive on the twin and every other source still reaches
        the port's own socket and the latching logic (rejects counted, re-latch
        after a new SDP or a stale latch) just as before; both feed the same
        `datagram_received`. What it saves is on the way back: the other leg sends
        to this phone with the twin's `send`, which needs no address conversion and
        no route lookup per datagram (about 1 us CPU of some 10 per relayed packet).
        A re-latch re-connects the twin; the session's close closes it."""
        return self._source

    @source.setter
    def source(self, value: Address | None) -> None:
        self._source = value
        if value is not None and value != self._twin_peer and not self.rtcp:
            self._connect_twin(value)
        elif value is None and self._twin is not None and self.session._closed:
            self._close_twin()
        self._route()

    def set_path(
        self, sendto: Callable[..., object] | None, target: Address | None, source: Address | None
    ) -> None:
        """Set `sendto`, `target` and `source` together, working out the send call once.

        Why: a latch rewires all four ports of the session (pbx.media.relay._rewire);
        setting the three properties one by one worked the send call out three times
        per port (13 `_route` calls per latch), and when 600 calls start at once the
        latches are what holds the relay's loop."""
        self._sendto = sendto
        self._target = target
        self.source = source

    @property
    def sendto(self) -> Callable[..., object] | None:
        """The `sendto` of the socket (or transport) this port forwards through."""
        return self._sendto

    @sendto.setter
    def sendto(self, value: Callable[..., object] | None) -> None:
        self._sendto = value
        self._route()

    @property
    def target(self) -> Address | None:
        """Where this port forwards to: the other phone's latched or SDP address."""
        return self._target

    @target.setter
    def target(self, value: Address | None) -> None:
        self._target = value
        self._route()

    def _route(self) -> None:
        """The hot path's send call: the twin's `send` when this port forwards through the
        other leg's socket to exactly the address that socket's twin is connected to."""
        send: Callable[..., object] | None = self._sendto
        to: Address | int | None = self._target
        out = self._other()
        if out is not None and out._twin is not None and to == out._twin_peer:
            base = out.transport
            if base is not None and send == base.sendto:
                send, to = out._twin.send, 0  # send(data, flags=0)
        self._send, self._to = send, to

    def _other(self) -> _Port | None:
        """The other leg's port of the same kind: it forwards through this port's socket."""
        state = self.session._legs.get(self.leg.other)
        if state is None:
            return None
        return state.rtcp if self.rtcp else state.rtp

    def _connect_twin(self, peer: Address) -> None:
        reader = self.session._relay._reader
        base = self.transport
        if reader is None or reader.closed or not isinstance(base, socket.socket) or not _TWINS:
            return  # transports (or no reader): no twin, the port's socket does it all
        twin = self._twin
        if twin is None and reader.watched >= twin_budget():
            return  # file descriptors are for calls first
        try:
            if twin is None:
                twin = _bind_twin(base)
                try:
                    twin.connect(peer)
                    reader.add_connected(twin, self, peer)
                except BaseException:
                    twin.close()
                    raise
                self._twin = twin
            else:
                self._drain_twin(twin)
                twin.connect(peer)
                reader.add_connected(twin, self, peer)
        except OSError as exc:
            label, leg = self.session.label, self.leg.value
            log.debug("[%s] leg %s: RTP back to the phone unconnected: %s", label, leg, exc)
            self._close_twin()
            return
        self._twin_peer = peer
        other = self._other()
        if other is not None:
            other._route()

    def _drain_twin(self, twin: socket.socket) -> None:
        """Before the twin re-connects to a new latch: what its old peer sent and the
        reader has not read yet would pass as the new peer's (the reader takes a
        connected socket's source from its peer), so it is read now and counted
        as the slow path counts a datagram from a source other than a fresh latch."""
        for _n in range(TWIN_DRAIN_MAX):
            try:
                twin.recv(2048)
            except BlockingIOError:
                return
            except OSError:  # an ICMP error queued on the socket: nothing to count
                continue
            self.rejected += 1

    def _close_twin(self) -> None:
        twin, self._twin, self._twin_peer = self._twin, None, None
        if twin is None:
            return
        reader = self.session._relay._reader
        if reader is not None and not reader.closed:
            reader.remove(twin)
        twin.close()
        other = self._other()
        if other is not None:
            other._route()

    def close(self) -> None:
        """Close the socket; `connection_lost` follows on the loop's next round."""
        self._close_twin()
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
            if addr == self._source and data[0] >> 6 == 2:  # the slot: no property call
                self.packets += 1
                self.octets += len(data)
                if self.plain:
                    self._send(data, self._to)  # type: ignore[misc]
                    return
                # a tapped or transcoding port: tap, rewrite, send (inline, not a method call:
                # every packet of a recorded call comes here)
                tap = self.tap
                if tap is not None:
                    try:
                        tap(self.leg, data, self.clock())
                    except Exception:
                        self.session._tap_failed(self)
                transform = self.transform
                self._send(data if transform is None else transform(data), self._to)  # type: ignore[misc]
                return
        except IndexError:  # an empty datagram; the slow path rejects it
            pass
        self.session._slow_path(self, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("[%s] leg %s socket error: %s", self.session.label, self.leg.value, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.session._port_lost(self)


TWIN_DRAIN_MAX = 64  # datagrams of an old peer read off a twin that re-connects (a bound)


def twin_budget() -> int:
    """How many sockets the relay's epoll set may hold before latched ports stop getting
    twins: half the process's file descriptor limit, so twins never take the descriptors
    that new calls' ports (or SIP, or the store) need (a desktop's soft limit is often
    1,024: 256 calls' four sockets)."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 0
    return sys.maxsize if soft == resource.RLIM_INFINITY else soft // 2


def _bind_twin(base: socket.socket) -> socket.socket:
    """A non-blocking UDP socket bound beside `base` on its address and port (SO_REUSEPORT:
    only sockets of the same user may share a port this way)."""
    base.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    twin = socket.socket(base.family, socket.SOCK_DGRAM)
    try:
        twin.setblocking(False)
        twin.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if base.family == socket.AF_INET6:
            twin.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        twin.bind(base.getsockname())
    except BaseException:
        twin.close()
        raise
    return twin


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
