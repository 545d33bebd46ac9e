"""Where a relay leg's sockets come from: a fresh bind, or the pool of closed legs' port pairs.

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
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from pbx.media.ports import PortPair

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
    which gives a previous call's stragglers the most time to stop."""

    __slots__ = ("size", "count", "loop", "_legs")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"pool must be >= 0 legs: {size}")
        self.size = size
        self.count = 0
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop the parked legs run on
        self._legs: dict[tuple[int, str], deque[ParkedLeg]] = {}

    def take(self, family: int, host: str) -> ParkedLeg | None:
        """The oldest parked leg of that family and bind host, or None."""
        legs = self._legs.get((family, host))
        if not legs:
            return None
        self.count -= 1
        return legs.popleft()

    def put(self, leg: ParkedLeg) -> bool:
        """Park `leg`; False (and nothing kept) when the pool is full."""
        if self.count >= self.size:
            return False
        self._legs.setdefault((leg.family, leg.host), deque()).append(leg)
        self.count += 1
        return True

    def take_all(self) -> list[ParkedLeg]:
        """Empty the pool (to close every parked leg)."""
        legs = [leg for queue in self._legs.values() for leg in queue]
        self._legs.clear()
        self.count = 0
        return legs


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
