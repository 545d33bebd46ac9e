"""The RTP/RTCP relay that bridges the two legs of a call (the B2BUA's media plane).

Theory of operation
-------------------
A `RelaySession` has two legs, A (caller side) and B (callee side). Each leg
owns an RTP and an RTCP UDP socket on a port pair from the `PortAllocator`,
bound in the leg's address family. The B2BUA writes those ports into the SDP
it sends to each phone, so both phones send to the relay; the relay sends to
a phone *from* that phone's own leg ports, which is symmetric RTP (RFC 4961)
and lets NAT bindings open.

Where to send: first the address from the leg's SDP (`set_remote`, RFC 4566
`c=`/`m=`, RTCP on the next port unless RFC 3605 `a=rtcp:` says otherwise).
Phones behind NAT do not send from that address, so each port *latches*
(the "latching" of RFC 7362 §4): the source of the first datagram
that looks like RTP (version 2, a whole fixed header; RTCP: a whole SR/RR)
becomes the address the relay sends to from then on.
Datagrams from any other source are rejected while the latch is fresh; a
latch is released by a new SDP (`set_remote`, e.g. a re-INVITE with a new
address) or goes stale after `latch_timeout` seconds without packets from
the latched source, after which the next source re-latches. A phone on hold
that keeps its address simply stays latched.

Hot path: `_Port.datagram_received` compares the source with the latched
address, checks the version bits (RFC 3550 §5.1) and calls the other leg's
socket's `sendto` with a precomputed target; two counter increments are the
only other work. On the epoll path a latched RTP port also gets a twin
(pbx.media.relay_port): a second socket on the same port, connected to the
latched phone, which the kernel hands that phone's datagrams and through which
the other leg answers it with `send` (no route lookup or address conversion
per datagram); every other source still reaches the port's own socket, so
latching and re-latching work as described above. A port with a tap or a
transcoder stays on the hot path and takes its other branch, in the same
function: it reads the clock once, hands the datagram to the tap and sends the
transcoded packet. Everything unusual (first packets, foreign sources, drops,
RTCP while an RTCP tap is set) goes to `RelaySession._slow_path`, which
recomputes the hot-path fields in `_rewire`. An untapped port reads no clock
per packet: a sweep every `sweep_interval` seconds notices which ports saw
packets, which gives `last_packet_at` to within one sweep and drives latch
expiry. The sweep is spread over the interval in slices of at most 10 sessions
(`relay_sweep.SweepRota`; at 600 calls 50 ticks of 12), so no timer callback holds
the loop, and with it every call's RTP, for more than a slice's worth of work (a
busy relay's 50-session slice took 0.1-0.3 ms, and a relay 89 % busy needs about
nine times a stall to drain what queued meanwhile). Unless the B2BUA sets
transcoders, the payload is never parsed or altered, so RFC 4733
telephone-events, comfort noise and SRTP pass through untouched.

Features for the rest of the PBX, all off the hot path's common case:

* `set_tap(tap)`: every RTP datagram of both legs, with its arrival time
  (the recorder). `set_rtcp_tap(tap)`: the same for RTCP.
* `set_transcoders(a_to_b, b_to_a)`: a `bytes -> bytes` rewrite of RTP (never
  RTCP) per direction, for PCMU <-> PCMA when the legs answered different
  G.711 laws (pbx.media.transcode.transcoders_for_call gives the pair).
* `open_session(..., quality=True)`: a `pbx.media.leg_stats.CallQuality` fed
  from both taps (RTP deferred: one list append per packet, accounted in the
  once-a-second sweep) whose `quality_summary()` goes into the CDR.

Direction (`set_direction`) is off by default (every leg is sendrecv): the
phones honour RFC 3264 §6.1 `a=sendonly`/`inactive` themselves. The B2BUA
may set a leg's direction as that leg's SDP states it, and then the relay
drops what the direction forbids: an inactive leg neither sends nor
receives, a sendonly leg's packets are forwarded but nothing goes to it.

Reading the sockets (`Relay(sockets=...)`): on Linux all of a relay's
sockets sit in one epoll set that a single loop reader drains in bounded
batches, one datagram per ready socket a round and deeper only while a backlog
makes that pay (pbx.media.relay_poll; it saves the per-socket transport
machinery);
elsewhere, or with sockets="transports", each socket is an asyncio datagram
transport with `_Port` as its protocol. Both run the same per-packet code and
work under the stdlib loop and uvloop alike; the only timer is
`loop.call_later` for the sweep. The ports and value types live in
pbx.media.relay_port and are re-exported here.

A closed session's legs are parked, still bound and watched, for the next
session of the same family and bind host (`Relay(pool=...)`, 64 legs by
default, 0 turns it off); pbx.media.relay_pool says why and what keeps a
recycled port pair from mixing two calls' media.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import socket
from collections.abc import Callable

from pbx.media.leg_stats import CallQuality
from pbx.media.ports import PortAllocator
from pbx.media.relay_poll import EpollReader
from pbx.media.relay_pool import LegPool, LegSockets
from pbx.media.relay_port import (
    _DYNAMIC_TYPES,
    _MIN_SIZE,
    _RECEIVES,
    _SENDS,
    Address,
    Direction,
    Leg,
    LegStats,
    LocalPorts,
    RelayClosed,
    Tap,
    Transcoder,
    _LegState,
    _no_clock,
    _Port,
    ssrc_of,
)
from pbx.media.relay_sweep import SweepRota

__all__ = [
    "Address",
    "Direction",
    "Leg",
    "LegStats",
    "LocalPorts",
    "Relay",
    "RelayClosed",
    "RelaySession",
    "Tap",
    "Transcoder",
]

log = logging.getLogger(__name__)


class RelaySession:
    """The media of one call: two legs, their sockets, latching and counters.

    Create with `await relay.open_session(label)`; end with `close()` (the legs are
    parked for a later session, pbx.media.relay_pool, or their ports are freed once the
    loop has closed the sockets) or `await aclose()`.
    """

    def __init__(self, relay: Relay, label: str) -> None:
        self._relay = relay
        self.label = label
        self._legs: dict[Leg, _LegState] = {}
        self._tap: Tap | None = None
        self._rtcp_tap: Tap | None = None
        self._transcoders: dict[Leg, Transcoder | None] = {Leg.A: None, Leg.B: None}
        self.quality: CallQuality | None = None
        self._closed = False
        self._all_lost: asyncio.Future[None] | None = None

    # ---- API for the B2BUA -------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def local(self, leg: Leg) -> LocalPorts:
        """The relay's address and ports for this leg, to write into the leg's SDP."""
        state = self._legs[leg]
        return LocalPorts(state.host, state.pair.rtp, state.pair.rtcp)

    def set_remote(self, leg: Leg, host: str, rtp_port: int, rtcp_port: int | None = None) -> None:
        """Take the leg's address from its (new) SDP and release its latches.

        `host` is the IP literal of the SDP `c=` line. An unspecified address
        (0.0.0.0, RFC 3264 §8.4 old-style hold) or port 0 (a refused stream,
        RFC 3264 §6) leaves the leg without a destination until it latches.
        `rtcp_port` (RFC 3605 `a=rtcp:`) defaults to rtp_port + 1 (RFC 3550 §11).
        """
        self._check_open()
        state = self._legs[leg]
        ip_version, unspecified = _ip_literal(host)
        version = 6 if state.family == socket.AF_INET6 else 4
        if ip_version != version:
            raise ValueError(f"leg {leg.value} is IPv{version}-only, got {host}")
        if unspecified or rtp_port == 0:
            state.remote = (None, None)
        else:
            rtcp = rtp_port + 1 if rtcp_port is None else rtcp_port
            state.remote = ((host, rtp_port), (host, rtcp))
        for port in state.ports():
            port.latched = None
            port.stale = False
        self._rewire()

    def set_direction(self, leg: Leg, direction: Direction) -> None:
        """Enforce the leg's SDP direction (RFC 3264 §6.1) by dropping what it forbids."""
        self._check_open()
        self._legs[leg].direction = direction
        self._rewire()

    def set_tap(self, tap: Tap | None) -> None:
        """Attach (or with None detach) the recorder hook; see `Tap`."""
        self._check_open()
        self._tap = tap
        self._rewire()

    def set_rtcp_tap(self, tap: Tap | None) -> None:
        """Attach (or detach) a hook that sees every RTCP datagram of both legs.

        RTCP is a few packets per second (RFC 3550 §6.2), so a tapped RTCP port
        simply takes the slow path. With `quality` on, the session's CallQuality
        sees RTCP first and then this tap.
        """
        self._check_open()
        self._rtcp_tap = tap
        self._rewire()

    def set_transcoders(self, a_to_b: Transcoder | None, b_to_a: Transcoder | None) -> None:
        """Rewrite RTP from leg A before it goes to B, and from B before it goes to A.

        For a call whose legs answered different G.711 laws (RFC 3551 §4.5.14:
        same rate and size, so only the payload type and octets change); None
        forwards that direction untouched. RTCP is never rewritten.
        `pbx.media.transcode.transcoders_for_call(a_codec, b_codec)` gives the pair.
        """
        self._check_open()
        transcoders = {Leg.A: a_to_b, Leg.B: b_to_a}
        if transcoders != self._transcoders:  # every answer settles the laws, most the same
            self._transcoders = transcoders
            self._rewire()

    def quality_summary(self) -> dict[Leg, dict[str, object]] | None:
        """Per-leg packets, loss, jitter, RTT and MOS for the CDR (pbx.media.leg_stats),
        keyed by the leg whose phone sent the media; None unless opened with quality=True.
        Readable during the call and after close()."""
        if self.quality is None:
            return None
        return {Leg(leg): summary for leg, summary in self.quality.summary().items()}

    def stats(self, leg: Leg) -> LegStats:
        """Counters of one leg, readable any time, also after close."""
        mine, theirs = self._legs[leg], self._legs[leg.other]
        return LegStats(
            packets_in=mine.rtp.packets,
            bytes_in=mine.rtp.octets,
            packets_out=theirs.rtp.packets - theirs.rtp.dropped,
            bytes_out=theirs.rtp.octets - theirs.rtp.dropped_octets,
            dropped=mine.rtp.dropped + mine.rtcp.dropped,
            rejected=mine.rtp.rejected + mine.rtcp.rejected,
            last_packet_at=_latest(mine.rtp.last_at, mine.rtcp.last_at),
            latched=mine.rtp.latched,
            rtcp_packets_in=mine.rtcp.packets,
            rtcp_packets_out=theirs.rtcp.packets - theirs.rtcp.dropped,
            rtcp_latched=mine.rtcp.latched,
            direction=mine.direction,
        )

    def close(self) -> None:
        """Stop relaying; each leg is parked in the relay's pool or closed (its ports go back
        to the allocator when the loop has closed the sockets)."""
        if self._closed:
            return
        self._closed = True
        self._tap = self._rtcp_tap = None
        for state in self._legs.values():
            for port in state.ports():
                port.source = None
                port.sendto = None
        relay = self._relay
        for state in self._legs.values():
            if not relay._park(state):
                for port in state.ports():
                    port.close()
        relay._forget(self)
        if all(state.open == 0 for state in self._legs.values()):
            if self._all_lost is not None and not self._all_lost.done():
                self._all_lost.set_result(None)

    async def aclose(self) -> None:
        """close() and wait until every socket is closed (or parked for the next session)
        and its port pair is free again."""
        self.close()
        if any(state.open for state in self._legs.values()):
            if self._all_lost is None:
                self._all_lost = asyncio.get_running_loop().create_future()
            await self._all_lost

    # ---- internals ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RelayClosed(f"relay session {self.label} is closed")

    def _add_leg(self, state: _LegState) -> None:
        self._legs[state.leg] = state

    def _rewire(self, rtcp: bool | None = None) -> None:
        """Recompute every port's hot-path fields from latches, SDP, direction, taps and
        transcoders; with `rtcp` given, only the two RTP (False) or RTCP (True) ports.

        A latch changes only its own port's source and the other leg's port of the same
        kind (it sends to the latched address), so `_latch` rewires just that kind:
        half the work when hundreds of calls latch at once."""
        legs = self._legs
        if self._closed or len(legs) < 2:
            return
        rtp_tap, rtcp_tap = self._effective_taps()
        relay = self._relay
        clock = relay._clock or (relay._loop.time if relay._loop else _no_clock)
        a, b = legs[Leg.A], legs[Leg.B]
        to_b, to_a = self._transcoders[Leg.A], self._transcoders[Leg.B]
        for state, peer, transform in ((a, b, to_b), (b, a, to_a)):
            forward = _SENDS[state.direction] and _RECEIVES[peer.direction]
            rtp_remote, rtcp_remote = peer.remote
            if rtcp is not True:
                _wire(state.rtp, peer.rtp, rtp_remote, forward, rtp_tap, transform, clock)
            if rtcp is not False:
                _wire(state.rtcp, peer.rtcp, rtcp_remote, forward, rtcp_tap, None, clock)

    def _effective_taps(self) -> tuple[Tap | None, Tap | None]:
        """(RTP, RTCP) taps: the call-quality monitor, if any, in front of the set ones."""
        rtp, rtcp, quality = self._tap, self._rtcp_tap, self.quality
        if quality is None:
            return rtp, rtcp
        return _both(quality.deferred_tap, rtp), _both(quality.rtcp, rtcp)

    def _slow_path(self, port: _Port, data: bytes, addr: Address) -> None:
        """Everything the hot path does not handle: latching, drops, rejects, the tap."""
        if not data or data[0] >> 6 != 2 or self._closed:
            port.rejected += 1
            return
        now = self._relay.clock()
        if addr != port.latched:
            fresh = port.latched is not None and not port.stale
            if fresh or len(data) < _MIN_SIZE[port.rtcp]:
                port.rejected += 1
                return
            if port.retired is not None and port.retired.refuses(addr, data, port.rtcp, now):
                port.rejected += 1  # the previous call's stream on a recycled port
                return
            self._latch(port, addr, now, data)
        port.packets += 1
        port.octets += len(data)
        port.last_at = now
        if port.tap is not None:
            try:
                port.tap(port.leg, data, now)
            except Exception:
                self._tap_failed(port)
        if not port.forward or port.target is None or port.sendto is None:
            port.dropped += 1
            port.dropped_octets += len(data)
            return
        port.sendto(data if port.transform is None else port.transform(data), port.target)

    def _latch(self, port: _Port, addr: Address, now: float, data: bytes) -> None:
        old = port.latched
        port.latched = addr
        port.ssrc = ssrc_of(data, port.rtcp)
        port.stale = False
        port.last_at = now
        kind = "RTCP" if port.rtcp else "RTP"
        log.debug("[%s] leg %s %s latched to %s", self.label, port.leg.value, kind, addr)
        if not port.rtcp and old is not None and old[0] != addr[0]:
            self._legs[port.leg].rtcp.stale = True  # the phone moved: let RTCP follow
        self._rewire(port.rtcp)

    def _tap_failed(self, port: _Port) -> None:
        """A tap raised: log it once and remove the tap set for that kind of port."""
        kind = "RTCP" if port.rtcp else "recorder"
        log.exception("[%s] %s tap failed and is removed", self.label, kind)
        if port.rtcp:
            self._rtcp_tap = None
        else:
            self._tap = None
        self._rewire()

    def _sweep(self, now: float, timeout: float) -> None:
        if self.quality is not None:
            self.quality.drain()  # the deferred RTP accounting, once per sweep
        for state in self._legs.values():
            for port in state.ports():
                if port.packets != port.seen:
                    port.seen = port.packets
                    port.last_at = now
                elif port.latched is not None and port.last_at is not None:
                    if not port.stale and now - port.last_at >= timeout:
                        port.stale = True
                        log.debug("[%s] leg %s latch stale", self.label, port.leg.value)

    def _port_lost(self, port: _Port) -> None:
        self._relay._transports -= 1
        state = self._legs[port.leg]
        state.open -= 1
        if state.open == 0:
            self._relay.ports.release(state.pair)
        if not self._closed:
            log.warning("[%s] leg %s socket closed under the relay", self.label, port.leg.value)
        if all(s.open == 0 for s in self._legs.values()):
            if self._all_lost is not None and not self._all_lost.done():
                self._all_lost.set_result(None)


def _wire(
    port: _Port,
    out: _Port,
    remote: Address | None,
    forward: bool,
    tap: Tap | None,
    transform: Transcoder | None,
    clock: Callable[[], float],
) -> None:
    """Set one port's hot-path fields: where and with what it sends, and whether the
    hot path may run (a latched source, somewhere to send, no RTCP tap)."""
    transport = out.transport
    sendto = transport.sendto if transport is not None else None
    target = out.latched if out.latched is not None else remote
    port.forward = forward
    port.tap = tap
    port.transform = transform
    port.plain = tap is None and transform is None
    port.clock = clock
    fast = forward and target is not None and sendto is not None
    port.set_path(sendto, target, port.latched if fast and (tap is None or not port.rtcp) else None)


def _both(first: Tap, then: Tap | None) -> Tap:
    """A tap that runs `first` and then `then` (if any)."""
    if then is None:
        return first

    def both(leg: Leg, data: bytes, arrival: float) -> None:
        first(leg, data, arrival)
        then(leg, data, arrival)

    return both


def _latest(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return first if second is None else second
    return max(first, second)


class Relay(LegSockets):
    """All relay sessions of one PBX: the port allocator, binding, and the latch sweep.

    `bind_v4`/`bind_v6` are the local addresses legs of each family listen on
    (the B2BUA advertises its public address in SDP). `clock` returns
    monotonic seconds; it defaults to the running loop's `time()`. Every session
    is swept once per `sweep_interval`, at most `sweep_slice` sessions per timer tick.
    `sockets` picks how sockets are read: "epoll" (one epoll set drained in batches,
    pbx.media.relay_poll), "transports" (an asyncio datagram transport per socket),
    or "auto": epoll where the platform and loop allow it, else transports.
    `coalesce` > 0 (seconds, epoll only; off by default) lets a busy relay read its
    sockets on a timer instead of being woken per datagram: less CPU per packet for
    up to that much added latency (`relay_poll.EpollReader._poll`).
    `pool` is how many closed legs (port pairs with their two sockets) stay bound for
    the next sessions (pbx.media.relay_pool); 0 closes every leg with its session.
    """

    def __init__(
        self,
        ports: PortAllocator,
        *,
        bind_v4: str = "0.0.0.0",
        bind_v6: str = "::",
        latch_timeout: float = 10.0,
        sweep_interval: float = 1.0,
        sweep_slice: int = 10,
        clock: Callable[[], float] | None = None,
        sockets: str = "auto",
        coalesce: float = 0.0,
        pool: int = 64,
    ) -> None:
        if sockets not in _SOCKET_READERS:
            raise ValueError(f"sockets must be one of {', '.join(_SOCKET_READERS)}: {sockets!r}")
        if coalesce < 0:
            raise ValueError(f"coalesce must be >= 0 seconds: {coalesce}")
        self.ports = ports
        self.sockets = sockets
        self.coalesce = coalesce
        self.bind: dict[int, str] = {socket.AF_INET: bind_v4, socket.AF_INET6: bind_v6}
        self.latch_timeout = latch_timeout
        self.sweep_interval = sweep_interval
        self._clock = clock
        self._sessions: set[RelaySession] = set()
        self._rota: SweepRota[RelaySession] = SweepRota(sweep_interval, per_tick=sweep_slice)
        self._transports = 0
        self._pool = LegPool(pool, ports)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: EpollReader | None = None
        self._closed = False

    @property
    def open_sessions(self) -> int:
        return len(self._sessions)

    @property
    def open_transports(self) -> int:
        """Sockets of open sessions (parked ones are `pooled_transports`)."""
        return self._transports

    @property
    def pooled_transports(self) -> int:
        """Sockets parked for the next sessions (at most twice `pool`), or closing from it."""
        return self._pool.pooled

    def clock(self) -> float:
        if self._clock is not None:
            return self._clock()
        assert self._loop is not None
        return self._loop.time()

    async def open_session(
        self,
        label: str,
        family_a: int = socket.AF_INET,
        family_b: int = socket.AF_INET,
        *,
        quality: bool = False,
    ) -> RelaySession:
        """Bind two port pairs (one per leg, in that leg's family) and start relaying.

        A leg takes a parked port pair of its family when the pool has one, else it binds.
        `quality=True` measures each leg (pbx.media.leg_stats.CallQuality) for the
        CDR: `session.quality_summary()`. Telephone-events count for loss, not jitter;
        the relay cannot see the SDP, so every dynamic type (96-127) is taken as one.
        """
        now = self.open_session_now(label, family_a, family_b, quality=quality)
        if now is not None:
            return now
        session = self._new_session(label, quality)
        try:
            for leg, family in ((Leg.A, family_a), (Leg.B, family_b)):
                if not self._reuse_leg(session, leg, family):
                    await self._open_leg_transports(session, leg, family)
        except BaseException:
            self._sessions.add(session)
            session.close()
            raise
        return self._started(session)

    def open_session_now(
        self,
        label: str,
        family_a: int = socket.AF_INET,
        family_b: int = socket.AF_INET,
        *,
        quality: bool = False,
    ) -> RelaySession | None:
        """`open_session()` without a coroutine, for a caller already on the loop: with the
        epoll reader (the usual case) nothing is awaited, so a call setup needs no task of
        its own. None when the legs bind through asyncio transports (sockets="transports");
        then `await open_session()`. Raises OSError like it when no ports are free."""
        if self._closed:
            raise RelayClosed("the relay is closed")
        loop = self._loop = asyncio.get_running_loop()
        if self._pool.loop is not loop:
            self._pool.flush(self._reader)  # legs parked on an earlier loop
            self._pool.loop = loop
        reader = self._reader_for_loop()
        if reader is None:
            return None
        session = self._new_session(label, quality)
        try:
            for leg, family in ((Leg.A, family_a), (Leg.B, family_b)):
                if not self._reuse_leg(session, leg, family):
                    self._open_leg(session, leg, family, reader)
        except BaseException:
            self._sessions.add(session)
            session.close()
            raise
        return self._started(session)

    def _new_session(self, label: str, quality: bool) -> RelaySession:
        session = RelaySession(self, label)
        if quality:
            session.quality = CallQuality((Leg.A, Leg.B), event_types=_DYNAMIC_TYPES)
        return session

    def _started(self, session: RelaySession) -> RelaySession:
        self._sessions.add(session)
        session._rewire()
        self._arm()
        return session

    def _reader_for_loop(self) -> EpollReader | None:
        """The epoll reader of the running loop (made on first use), or None for transports."""
        loop = self._loop
        if loop is None or self.sockets == "transports":
            return None
        reader = self._reader
        if reader is not None and reader.loop is loop and not reader.closed:
            return reader
        if reader is not None and reader.watched == 0:
            reader.close()  # a reader left on an earlier loop
        self._reader = EpollReader.for_loop(loop, self.coalesce)
        if self._reader is None and self.sockets == "epoll":
            raise RuntimeError("sockets='epoll' needs select.epoll and a loop with add_reader")
        return self._reader

    def sweep(self, now: float) -> None:
        """Note which ports saw packets since the last sweep; mark silent latches stale.

        This visits every session at once; the relay's own timer spreads the same
        work over the interval in slices (`relay_sweep.SweepRota`) so it never
        holds the loop for long."""
        for session in list(self._sessions):
            session._sweep(now, self.latch_timeout)

    def _arm(self) -> None:
        if self._timer is None and self._loop is not None:
            self._timer = self._loop.call_later(self._rota.delay(), self._on_timer)

    def _on_timer(self) -> None:
        """One tick of the spread sweep: the rota's next slice of sessions (relay_sweep)."""
        self._timer = None
        now = self.clock()
        for session in self._rota.take(self._sessions):
            if not session._closed:
                session._sweep(now, self.latch_timeout)
        if self._sessions:
            self._arm()

    def _forget(self, session: RelaySession) -> None:
        self._sessions.discard(session)
        if not self._sessions:
            self._rota.reset()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def close(self) -> None:
        """Close every session and parked leg; sockets close on the next loop iteration."""
        self._closed = True
        for session in list(self._sessions):
            session.close()
        self._pool.flush(self._reader)
        if self._reader is not None:
            self._reader.close()

    async def aclose(self) -> None:
        """close() and wait until every socket is closed."""
        sessions = list(self._sessions)
        self.close()
        for session in sessions:
            await session.aclose()
        await self._pool.wait_empty()


_SOCKET_READERS = ("auto", "epoll", "transports")


@functools.lru_cache(maxsize=4096)
def _ip_literal(host: str) -> tuple[int, bool]:
    """(IP version, unspecified?) of an SDP address; ValueError if it is no IP literal.

    Cached: a PBX sees the same few phone and trunk addresses in call after call."""
    ip = ipaddress.ip_address(host)
    return ip.version, ip.is_unspecified
