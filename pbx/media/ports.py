"""RTP port pairs: an even RTP port and the odd RTCP port above it, from a LOW-HIGH range.

RFC 3550 §11: RTP goes on an even port and RTCP on the next odd one, which is
what a phone assumes when the SDP carries no `a=rtcp:` line (RFC 3605).
The allocator only keeps the books; the relay binds the sockets and, when a
port turns out to be taken by another process, releases the pair and asks
again (the cursor has moved past it).

Pairs are handed out round-robin from a cursor rather than lowest-first:
a released pair is reused only after the rest of the range, so late packets
of a finished call do not land in the next call (Asterisk and rtpengine do
the same). When every pair is in use `allocate` raises `PortsExhausted`,
whose text names the range so an admin knows what to widen.

A relay may keep a closed call's pair bound for its next call (pbx.media.relay_pool):
such a pair is `park`ed, neither in use by a call nor free, and `unpark`ed when a
call takes it over; `in_use` counts the pairs of calls, `parked` the others.
"""

from __future__ import annotations

from dataclasses import dataclass


class PortsExhausted(OSError):
    """Every RTP port pair of the configured range is in use.

    An `OSError`, like a failed bind, so a caller handles "no RTP ports" once.
    """


@dataclass(frozen=True, slots=True)
class PortPair:
    """An even RTP port and its odd RTCP port (RFC 3550 §11)."""

    rtp: int
    rtcp: int


class PortAllocator:
    """Hands out and takes back RTP/RTCP port pairs within [low, high].

    `low` is rounded up to even and the last pair must fit below or at `high`,
    so a range of 10000-10009 holds the five pairs 10000/10001 .. 10008/10009.
    """

    def __init__(self, low: int, high: int) -> None:
        first = low + (low & 1)
        if not 1024 <= low <= high <= 65535:
            raise ValueError(f"RTP port range {low}-{high} must lie within 1024-65535, low <= high")
        if first + 1 > high:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd port pair")
        self.low = low
        self.high = high
        self._first = first
        self._pairs = (high - first + 1) // 2
        self._in_use: set[int] = set()
        self._parked: set[int] = set()
        self._cursor = 0

    @property
    def capacity(self) -> int:
        """How many pairs the range holds."""
        return self._pairs

    @property
    def in_use(self) -> int:
        """How many pairs are allocated now (for leak checks)."""
        return len(self._in_use)

    @property
    def parked(self) -> int:
        """How many pairs are parked (bound, kept for the next call) now."""
        return len(self._parked)

    def allocate(self) -> PortPair:
        """The next free pair after the cursor, or `PortsExhausted`."""
        if len(self._in_use) + len(self._parked) >= self._pairs:
            raise PortsExhausted(
                f"no free RTP port pair in {self.low}-{self.high}: all {self._pairs} pairs "
                "are in use; widen the RTP port range or end some calls"
            )
        index = self._cursor
        while index in self._in_use or index in self._parked:
            index = (index + 1) % self._pairs
        self._in_use.add(index)
        self._cursor = (index + 1) % self._pairs
        rtp = self._first + 2 * index
        return PortPair(rtp, rtp + 1)

    def release(self, pair: PortPair) -> None:
        """Give a pair (in use or parked) back; releasing a free pair is a bug and raises."""
        index = self._index(pair)
        if index in self._parked:
            self._parked.remove(index)
            return
        if index not in self._in_use:
            raise ValueError(f"RTP port pair {pair.rtp}/{pair.rtcp} is not allocated here")
        self._in_use.remove(index)

    def park(self, pair: PortPair) -> None:
        """A call's pair stays bound for a later call: no longer in use, not free either."""
        index = self._index(pair)
        if index not in self._in_use:
            raise ValueError(f"RTP port pair {pair.rtp}/{pair.rtcp} is not in use here")
        self._in_use.remove(index)
        self._parked.add(index)

    def unpark(self, pair: PortPair) -> None:
        """A parked pair is in use by a call again."""
        index = self._index(pair)
        if index not in self._parked:
            raise ValueError(f"RTP port pair {pair.rtp}/{pair.rtcp} is not parked here")
        self._parked.remove(index)
        self._in_use.add(index)

    def _index(self, pair: PortPair) -> int:
        index, odd = divmod(pair.rtp - self._first, 2)
        if odd or pair.rtcp != pair.rtp + 1 or not 0 <= index < self._pairs:
            raise ValueError(f"RTP port pair {pair.rtp}/{pair.rtcp} is not allocated here")
        return index

    def owns(self, port: int) -> bool:
        """True if a port (RTP or RTCP) belongs to a pair allocated (or parked) now."""
        index = (port - self._first) // 2
        return port >= self._first and (index in self._in_use or index in self._parked)
