"""Where a relay leg's sockets come from: a fresh bind, or the pool of closed legs' port pairs.

`LegSockets` is the part of the Relay that opens a leg (from the pool, else a
new pair in the epoll set or as asyncio transports) and parks it when its
session closes; `LegPool` keeps the parked legs.

Why a pool: binding a leg's two UDP sockets, registering them with the epoll
set (or making two asyncio transports) and closing them all again when the
call ends was some 10-15 % of a call setup's CPU (issue #3). A closed
session's legs are parked here instead, still bound and still watched, and
the next session of the same address family and bind host takes them over:
a parked leg costs the reader a handler swap and a drain, not four system
calls and two objects per socket.

What keeps a recycled pair from mixing two calls' media:

* while parked, the sockets' datagrams go to `IDLE`, which drops them;
* on reuse whatever is still queued in the kernel is read and dropped (`drain`);
* the new session gets new `_Port` objects (latching, counters, taps,
  transcoders and direction all start afresh; the old session's counters
  stay readable);
* a datagram that would *latch* a recycled port is refused when it comes
  from the address the previous call had latched with that call's SSRC
  (RFC 3550 §8: a new call's stream has a new SSRC) until `latch_timeout`
  after the previous call ended (`Retired`; the latching of RFC 7362 §4
  then forgets it, as it forgets a stale latch).

The pool holds at most `size` legs (port pairs); a leg closed when it is
full is closed for real. `Relay.close` closes every parked leg. Parked
pairs are neither "in use" by a call nor free in the `PortAllocator`: it
counts them as `parked`, and the relay reports their sockets as
`pooled_transports`, apart from `open_transports`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pbx.media.ports import PortAllocator, PortPair, PortsExhausted
from pbx.media.relay_port import Leg, Retired, _LegState, _Port

if TYPE_CHECKING:
    from pbx.media.relay import RelaySession
    from pbx.media.relay_poll import EpollReader

log = logging.getLogger("pbx.media.relay")  # one logger name for the whole relay

DRAIN_MAX = 64  # datagrams read and dropped per socket on reuse (a bound, not a goal)


class _Idle(asyncio.DatagramProtocol):
    """The handler of a parked socket: drops what arrives (a previous call's late packets)."""

    def __init__(self, lost: Callable[[], None] | None = None) -> None:
        self._lost = lost

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        pass

    def error_received(self, exc: Exception) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost is not None:
            self._lost()


IDLE = _Idle()
"""The epoll reader's handler for every parked socket."""


class ParkedLeg:
    """A closed leg's bound port pair, kept for the next session.

    `socks` are the two sockets (RTP, RTCP); `handles` what the ports send with and
    close (the sockets themselves on the epoll path, else their asyncio transports);
    `retired` one `Retired` (or None) per socket."""

    __slots__ = ("family", "host", "pair", "socks", "handles", "retired")

    def __init__(
        self,
        family: int,
        host: str,
        pair: PortPair,
        socks: tuple[socket.socket, socket.socket],
        handles: tuple[Any, Any],
        retired: tuple[Retired | None, Retired | None],
    ) -> None:
        self.family = family
        self.host = host
        self.pair = pair
        self.socks = socks
        self.handles = handles
        self.retired = retired


class LegPool:
    """Parked legs by (family, bind host), oldest first, at most `size` in all.

    Oldest first: a pair waits as long as the pool allows before its next call,
    which gives a previous call's stragglers the most time to stop. The pool
    keeps the books of `ports` (park, unpark, release) for the pairs it holds;
    `pooled` counts its sockets, parked or still closing."""

    __slots__ = ("size", "ports", "count", "pooled", "loop", "_legs", "_empty")

    def __init__(self, size: int, ports: PortAllocator) -> None:
        if size < 0:
            raise ValueError(f"pool must be >= 0 legs: {size}")
        self.size = size
        self.ports = ports
        self.count = 0  # parked legs
        self.pooled = 0  # their sockets, and those of legs still closing
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop the parked legs run on
        self._legs: dict[tuple[int, str], deque[ParkedLeg]] = {}
        self._empty: asyncio.Future[None] | None = None

    @property
    def full(self) -> bool:
        return self.count >= self.size

    def take(self, family: int, host: str, reader: PolledReader | None) -> ParkedLeg | None:
        """The oldest usable parked leg of that family and bind host, drained, or None."""
        legs = self._legs.get((family, host))
        while legs:
            parked = legs.popleft()
            self.count -= 1
            if _usable(parked):
                self.ports.unpark(parked.pair)
                self.pooled -= 2
                for sock in parked.socks:
                    drain(sock)
                return parked
            self._close(parked, reader)
        return None

    def put(self, parked: ParkedLeg, reader: PolledReader | None) -> bool:
        """Park a closing session's leg (its ports now idle); False when it cannot be kept."""
        if self.full or _loop_closed(self.loop):
            return False
        if parked.handles[0] is parked.socks[0]:
            if reader is None or reader.closed:
                return False
            for sock in parked.socks:
                reader.rebind(sock, IDLE)
        else:
            if not _usable(parked):
                return False
            idle = _Idle(self._lost_one(parked))
            for handle in parked.handles:
                handle.set_protocol(idle)
        self._legs.setdefault((parked.family, parked.host), deque()).append(parked)
        self.count += 1
        self.pooled += 2
        self.ports.park(parked.pair)
        return True

    def flush(self, reader: PolledReader | None) -> None:
        """Close every parked leg (the relay closes, or its loop changed)."""
        legs = [parked for queue in self._legs.values() for parked in queue]
        self._legs.clear()
        self.count = 0
        for parked in legs:
            self._close(parked, reader)

    async def wait_empty(self) -> None:
        """Until every socket the pool closed is closed and its pair is free."""
        if self.pooled:
            self._empty = asyncio.get_running_loop().create_future()
            await self._empty

    def _close(self, parked: ParkedLeg, reader: PolledReader | None) -> None:
        """Close a parked leg for real: its sockets and, once they are closed, its pair."""
        if parked.handles[0] is not parked.socks[0] and not _loop_closed(self.loop):
            for handle in parked.handles:
                handle.close()  # its _Idle's connection_lost frees the pair
            return
        for sock in parked.socks:
            if reader is not None and not reader.closed and parked.handles[0] is sock:
                reader.remove(sock)
            sock.close()
        self.pooled -= 2
        self.ports.release(parked.pair)
        self._check_empty()

    def _lost_one(self, parked: ParkedLeg) -> Callable[[], None]:
        """A parked transport's connection_lost: the pair is free once both are closed."""
        left = [2]

        def lost() -> None:
            self.pooled -= 1
            left[0] -= 1
            if left[0] == 0:
                self.ports.release(parked.pair)
            self._check_empty()

        return lost

    def _check_empty(self) -> None:
        if self.pooled == 0 and self._empty is not None and not self._empty.done():
            self._empty.set_result(None)


class PolledReader(Protocol):
    """What the pool needs of the relay's epoll reader (pbx.media.relay_poll.EpollReader)."""

    @property
    def closed(self) -> bool: ...

    def rebind(self, sock: socket.socket, port: Any) -> None: ...

    def remove(self, sock: socket.socket) -> None: ...


def _usable(parked: ParkedLeg) -> bool:
    """A parked leg whose transports (if any) are still open."""
    if parked.handles[0] is parked.socks[0]:
        return True
    return not any(handle.is_closing() for handle in parked.handles)


def _loop_closed(loop: asyncio.AbstractEventLoop | None) -> bool:
    return loop is None or loop.is_closed()


def drain(sock: socket.socket) -> int:
    """Read and drop what is queued on a non-blocking socket (at most DRAIN_MAX datagrams)."""
    for count in range(DRAIN_MAX):
        try:
            sock.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            return count
        except OSError:  # a queued ICMP error: it was the previous call's
            continue
    return DRAIN_MAX


def bind_pair(family: int, host: str, pair: PortPair) -> list[socket.socket]:
    """Both sockets of a pair, bound, or neither (the first is closed if the second fails)."""
    first = bind(family, host, pair.rtp)
    try:
        return [first, bind(family, host, pair.rtcp)]
    except BaseException:
        first.close()
        raise


def bind(family: int, host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to (host, port); IPv6 sockets are v6-only."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class LegSockets:
    """The part of `pbx.media.relay.Relay` that gives a leg its sockets and takes them back:
    a parked leg from the pool, else a freshly bound pair (epoll set or transports)."""

    ports: PortAllocator
    bind: dict[int, str]
    latch_timeout: float
    _pool: LegPool
    _reader: EpollReader | None
    _loop: asyncio.AbstractEventLoop | None
    _transports: int
    _closed: bool

    def clock(self) -> float:
        raise NotImplementedError

    def _reuse_leg(self, session: RelaySession, leg: Leg, family: int) -> bool:
        """Give the leg a parked port pair (drained, handed to the leg's new ports)."""
        reader = self._reader
        parked = self._pool.take(family, self.bind[family], reader)
        if parked is None:
            return False
        state = _LegState(leg, family, parked.pair, parked.host, session)
        state.socks = parked.socks
        session._add_leg(state)
        ports = state.ports()
        for sock, handle, port, retired in zip(
            parked.socks, parked.handles, ports, parked.retired, strict=True
        ):
            port.retired = retired
            if handle is sock:
                assert reader is not None
                reader.rebind(sock, port)
            else:
                handle.set_protocol(port)
            port.connection_made(handle)
            state.open += 1
        return True

    def _park(self, state: _LegState) -> bool:
        """Keep a closing session's leg bound for a later session, if the pool takes it."""
        if self._closed or self._pool.full or state.open != 2 or self._pool.loop is not self._loop:
            return False
        rtp, rtcp = state.ports()
        handles = (rtp.transport, rtcp.transport)
        if handles[0] is None or handles[1] is None:
            return False
        if isinstance(handles[0], socket.socket) and handles[0] is not state.socks[0]:
            return False
        until = self.clock() + self.latch_timeout
        retired = tuple(
            port.retired if port.latched is None else Retired(port.latched, port.ssrc, until)
            for port in (rtp, rtcp)
        )
        parked = ParkedLeg(state.family, state.host, state.pair, state.socks, handles, retired)  # type: ignore[arg-type]
        if not self._pool.put(parked, self._reader):
            return False
        rtp.transport = rtcp.transport = None
        state.open = 0
        self._transports -= 2
        return True

    def _open_leg(self, session: RelaySession, leg: Leg, family: int, reader: EpollReader) -> None:
        """Bind a fresh pair for the leg and add its sockets to the epoll set."""
        state = self._bind_leg(session, leg, family)
        try:
            for sock, port in zip(state.socks, state.ports(), strict=True):
                reader.add(sock, port)
                port.connection_made(sock)
                state.open += 1
        except BaseException:
            self._abandon(state)
            raise

    async def _open_leg_transports(self, session: RelaySession, leg: Leg, family: int) -> None:
        """Bind a fresh pair for the leg and give each socket an asyncio datagram transport."""
        state = self._bind_leg(session, leg, family)
        assert self._loop is not None
        try:
            for sock, port in zip(state.socks, state.ports(), strict=True):
                await self._loop.create_datagram_endpoint(_factory(port), sock=sock)
                state.open += 1
        except BaseException:
            self._abandon(state)
            raise

    def _abandon(self, state: _LegState) -> None:
        for sock in state.socks[state.open :]:
            sock.close()  # never handed over; the opened ones close with the session
        if state.open == 0:
            self.ports.release(state.pair)

    def _bind_leg(self, session: RelaySession, leg: Leg, family: int) -> _LegState:
        """A leg on a newly allocated pair, skipping pairs another process has taken."""
        host = self.bind[family]
        for _attempt in range(min(16, self.ports.capacity)):
            pair = self._allocate()
            try:
                socks = bind_pair(family, host, pair)
            except OSError as exc:
                pair_ports = (pair.rtp, pair.rtcp)
                self.ports.release(pair)
                if exc.errno != errno.EADDRINUSE:
                    raise
                log.info("RTP ports %d/%d busy outside the relay, trying the next", *pair_ports)
                continue
            state = _LegState(leg, family, pair, host, session)
            state.socks = tuple(socks)
            session._add_leg(state)
            return state
        raise OSError(
            errno.EADDRINUSE, f"no bindable RTP port pair in {self.ports.low}-{self.ports.high}"
        )

    def _allocate(self) -> PortPair:
        """A free pair; when only parked pairs (of another family or host) are left, those."""
        try:
            return self.ports.allocate()
        except PortsExhausted:
            if not self._pool.count:
                raise
            self._pool.flush(self._reader)
            return self.ports.allocate()


def _factory(port: _Port) -> Callable[[], _Port]:
    return lambda: port
