"""How the relay's sockets are read: one epoll set for all of them, drained by one loop reader.

Why not one asyncio transport per socket: at 600 calls the relay has 2,400
sockets and forwards 60,000 datagrams a second, and per datagram the event
loop's machinery (a callback handle per ready socket, the transport's
bookkeeping around `sendto`, an extra read per socket) adds to the relay's own work.
Here every relay socket sits in one `select.epoll` set whose file descriptor
is the only thing the loop watches (`loop.add_reader`). When it is readable,
`EpollReader._ready` takes up to `batch` ready sockets from the set in one
`epoll.poll(0)` call and, for each, reads one datagram with `recvfrom` (with
`recv` from a socket connected to a latched phone, `add_connected`) and
hands it to the port's `datagram_received`, the same per-packet code the
transport path runs. The set is level-triggered, so a socket with more
datagrams queued is simply reported again on the next round; a second read
from the same socket in one round happens only while it pays, i.e. when
queues are several datagrams deep (see `_round`: a read that finds the
socket empty costs as much as one that relays a datagram). A busy relay
never holds the loop for long: 64 datagrams are under a millisecond of work
(`DEEP` times that when far behind), so SIP and timers on the same loop wait
no longer than that, while the round's fixed cost (one `epoll.poll`, one
loop iteration) is spread over many datagrams.

Sending is the socket's own non-blocking `sendto`: a datagram the kernel
cannot take right now (ENOBUFS/EAGAIN) is dropped and reported to the port's
`error_received` like a transport's send error (a transport would queue it;
for RTP, late is as good as lost). The relay's counters still count it as
forwarded.

What it saves (CPU per relayed 172-byte datagram, 1,200 sockets in one
process, interleaved runs on the same shared host): with about 60 datagrams
per loop round, 10-20 % less than a
uvloop transport per socket, mostly the transport's extra `recvmsg` that
ends in EAGAIN and its per-socket callback; with deep per-socket queues
(an overloaded relay) the two are level. Some 70 % of what remains is the
kernel's own `recvfrom`/`sendto` work, which no reader can avoid.

Linux only (epoll) and only on loops with `add_reader` (not the Windows
proactor loop): `EpollReader.for_loop` returns None elsewhere and the relay
falls back to asyncio datagram transports.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65536  # whole UDP datagrams; recvfrom costs the same for 2 KiB or 64 KiB
DEEP = 4  # datagrams read per ready socket in a round when deep reads pay (far behind)
PROBE = 8  # sockets read deep to test whether deep reads pay, when the relay is behind
PROBE_EVERY = 8  # every how many whole-batch rounds a probe runs
PAYS = 2  # deep reads pay while they get at least this many extra datagrams per empty read
_Recv = Callable[[int], Any]  # recvfrom -> (data, addr); on a connected socket recv -> data
_Handle = Callable[[bytes, Any], None]


class PolledPort(Protocol):
    """What the reader needs from a relay port (pbx.media.relay._Port)."""

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None: ...

    def error_received(self, exc: Exception) -> None: ...


class EpollReader:
    """All relay sockets of one event loop in one epoll set; see the module docstring."""

    __slots__ = (
        "loop", "batch", "coalesce", "_epoll", "_ports", "_closed", "_last", "_held", "_deep",
        "_behind",
    )  # fmt: skip

    def __init__(
        self, loop: asyncio.AbstractEventLoop, batch: int = 64, coalesce: float = 0.0
    ) -> None:
        self.loop = loop
        self.batch = batch
        self.coalesce = coalesce
        self._last = -1.0  # loop time of the last round, when coalescing
        self._held: asyncio.TimerHandle | None = None
        self._epoll = select.epoll()
        # fd -> (socket.recvfrom, port.datagram_received, port, None), or for a connected
        # socket (socket.recv, ..., its peer): bound once, not per datagram
        self._ports: dict[int, tuple[_Recv, _Handle, PolledPort, Any]] = {}
        self._closed = False
        self._deep = False  # read up to DEEP datagrams per socket (see _round)
        self._behind = 0  # whole-batch rounds in a row
        try:
            loop.add_reader(self._epoll.fileno(), self._ready)
        except BaseException:
            self._epoll.close()
            raise

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop, coalesce: float = 0.0) -> EpollReader | None:
        """A reader on `loop`, or None where epoll or `add_reader` is missing."""
        if not hasattr(select, "epoll"):
            return None
        try:
            return cls(loop, coalesce=coalesce)
        except NotImplementedError:  # e.g. the proactor loop on Windows
            return None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def polling(self) -> bool:
        """The set is read by a timer every `coalesce` seconds, not watched (see `_poll`)."""
        return self._held is not None

    @property
    def watched(self) -> int:
        """How many sockets the set holds."""
        return len(self._ports)

    def add(self, sock: socket.socket, port: PolledPort) -> None:
        """Start reading `sock` (non-blocking, bound) for `port`."""
        fd = sock.fileno()
        self._epoll.register(fd, select.EPOLLIN)
        self._ports[fd] = (sock.recvfrom, port.datagram_received, port, None)

    def add_connected(self, sock: socket.socket, port: PolledPort, peer: Any) -> None:
        """Read `sock`, connected to `peer`, for `port` (or, already read, note its new peer).

        The kernel gives a connected UDP socket only its peer's datagrams, so the
        reader takes them with `recv` and hands them on with `peer` as the source:
        no address to fetch and convert per datagram (0.5 us CPU of a 1.8 us
        `recvfrom`). The caller must not leave datagrams of an earlier peer queued
        when it re-connects (pbx.media.relay_port drains them)."""
        fd = sock.fileno()
        if fd not in self._ports:
            self._epoll.register(fd, select.EPOLLIN)
        self._ports[fd] = (sock.recv, port.datagram_received, port, peer)

    def rebind(self, sock: socket.socket, port: PolledPort) -> None:
        """Hand `sock`'s datagrams to another port (a parked leg's, pbx.media.relay_pool):
        a dict update, no system call; the socket stays in the set."""
        fd = sock.fileno()
        recv, _handle, _port, peer = self._ports[fd]
        self._ports[fd] = (recv, port.datagram_received, port, peer)

    def remove(self, sock: socket.socket) -> None:
        """Stop reading `sock`; call before closing it (its number may be reused)."""
        fd = sock.fileno()
        if self._ports.pop(fd, None) is not None and not self._closed:
            self._epoll.unregister(fd)

    def close(self) -> None:
        """Stop watching the set; sockets still in it are the caller's to close."""
        if self._closed:
            return
        self._closed = True
        if self._held is not None:
            self._held.cancel()
            self._held = None
        elif not self.loop.is_closed():
            self.loop.remove_reader(self._epoll.fileno())
        self._epoll.close()
        self._ports.clear()

    def _ready(self) -> None:
        """The set is readable: one round; with `coalesce`, maybe switch to polling."""
        count = self._round()
        if self.coalesce > 0.0 and 0 < count < self.batch:
            now = self.loop.time()
            last, self._last = self._last, now
            if now - last < self.coalesce and not self._closed:
                self.loop.remove_reader(self._epoll.fileno())
                self._held = self.loop.call_later(self.coalesce, self._poll)

    def _poll(self) -> None:
        """Opt-in interrupt moderation (`coalesce` > 0), as network drivers do it (NAPI).

        Why: a relay that keeps up is woken by the kernel for nearly every datagram,
        and a wake-up (a context switch, `epoll_wait`, a loop iteration) costs about
        as much as relaying the datagram. When rounds come less than `coalesce`
        seconds apart, `_ready` stops watching the set and this timer reads it every
        `coalesce` seconds instead, so each round finds many datagrams. When a round
        finds none (the calls went quiet) or a whole batch (overloaded: datagrams
        are waiting anyway), the set is watched again. The price is up to `coalesce`
        seconds of added latency (plus the loop's timer granularity, 1 ms) while
        polling; a relay with few calls (rounds further apart) never polls.
        """
        self._held = None
        if self._closed:
            return
        count = self._round()
        if 0 < count < self.batch:
            self._held = self.loop.call_later(self.coalesce, self._poll)
        else:
            self._last = self.loop.time()
            self.loop.add_reader(self._epoll.fileno(), self._ready)

    def _round(self) -> int:
        """Up to `batch` ready sockets; how many sockets were ready.

        One datagram per ready socket a round, as a rule: the set is level-triggered,
        so a socket with more queued is reported again next round, while a read that
        finds its socket empty costs a system call and an exception (1.5 us CPU, as
        much as a successful read). Reading up to DEEP per socket whenever a whole
        batch was ready (the earlier rule) mostly hit EAGAIN after one datagram:
        at 50 packets/s per socket a relay behind by under 20 ms has about one
        datagram per socket, and the wasted reads (13-18 us CPU per relayed packet
        instead of 10) kept a relay that fell behind from ever catching up.
        Deep reads do pay when queues are several datagrams deep (an overloaded
        relay: a socket's queued datagrams read back to back, caches warm), so a
        relay that keeps getting whole batches probes now and then (`PROBE`
        sockets read deep every `PROBE_EVERY` whole-batch rounds) and reads deep
        while that gets at least `PAYS` extra datagrams per empty read."""
        events = self._epoll.poll(0, self.batch)
        count = len(events)
        if count < self.batch:  # keeping up
            self._deep = False
            self._behind = 0
            self._read(events)
        elif self._deep:
            self._deep = self._read_deep(events)
        else:
            self._behind += 1
            if self._behind % PROBE_EVERY:
                self._read(events)
            else:
                self._deep = self._read_deep(events[:PROBE])
                self._read(events[PROBE:])
        return count

    def _read(self, events: list[tuple[int, int]]) -> None:
        """One datagram from each ready socket, handed to its port."""
        ports, size = self._ports, MAX_DATAGRAM
        for fd, _events in events:
            entry = ports.get(fd)
            if entry is None:
                continue
            recv, handle, port, peer = entry
            try:
                if peer is None:
                    data, addr = recv(size)
                else:
                    data, addr = recv(size), peer
            except BlockingIOError:
                continue
            except OSError as exc:  # an ICMP error queued on the socket
                port.error_received(exc)
                continue
            try:
                handle(data, addr)
            except OSError as exc:  # the send failed (no route, buffer full)
                port.error_received(exc)
            except Exception:  # a bug must not stop every other call's media
                log.exception("relay socket %d: datagram handling failed", fd)

    def _read_deep(self, events: list[tuple[int, int]]) -> bool:
        """Up to DEEP datagrams from each ready socket; whether that paid (see `_round`)."""
        ports, size = self._ports, MAX_DATAGRAM
        extra = empty = 0
        for fd, _events in events:
            entry = ports.get(fd)
            if entry is None:
                continue
            recv, handle, port, peer = entry
            for read in range(DEEP):
                try:
                    if peer is None:
                        data, addr = recv(size)
                    else:
                        data, addr = recv(size), peer
                except BlockingIOError:
                    empty += read > 0
                    break
                except OSError as exc:
                    port.error_received(exc)
                    break
                extra += read > 0
                try:
                    handle(data, addr)
                except OSError as exc:
                    port.error_received(exc)
                except Exception:
                    log.exception("relay socket %d: datagram handling failed", fd)
        return extra >= PAYS * empty
