"""The UDP listener: one datagram socket, datagrams in, datagrams out.

A datagram is one SIP message (RFC 3261 18.3), so there is no framing here:
each datagram goes to the `on_datagram(data, source)` callback with the
source as a plain `(host, port)` pair (IPv6 flow info and scope dropped).
ICMP errors (port unreachable after a phone went away) are logged and
otherwise ignored: the transaction layer's timers notice the silence.

The socket's receive buffer can be enlarged (`receive_buffer`): datagrams that arrive
while the loop is busy (a garbage collection, a burst of phones re-registering after a
power cut) wait there, and what does not fit is dropped by the kernel and comes back only
as a retransmission 500 ms later (RFC 3261 Timer E), which adds load just when there is
too much. Linux caps the size at net.core.rmem_max; `effective_receive_buffer` reads back
what the kernel granted.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

DatagramCallback = Callable[[bytes, tuple[str, int]], None]


class UdpListener(asyncio.DatagramProtocol):
    """A bound UDP socket handing every datagram to one callback."""

    def __init__(self, on_datagram: DatagramCallback) -> None:
        self._on_datagram = on_datagram
        self._transport: asyncio.DatagramTransport | None = None
        self.local_address: tuple[str, int] = ("", 0)
        self.received = 0
        self.sent = 0
        self.receive_buffer = 0
        """Bytes of receive buffer the kernel reports for the socket (0: not read)."""

    # asyncio.DatagramProtocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        sockname = transport.get_extra_info("sockname")
        self.local_address = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received += 1
        source = (str(addr[0]), int(addr[1]))
        try:
            self._on_datagram(data, source)
        except Exception:  # one bad message must not kill the socket
            log.exception("UDP datagram from %s:%d failed", *source)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP %s:%d error: %s", *self.local_address, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    # ours ----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    @property
    def family_is_ipv6(self) -> bool:
        return ":" in self.local_address[0]

    def send(self, data: bytes, destination: tuple[str, int]) -> None:
        if self._transport is None:
            log.debug("UDP %s:%d closed; dropping %d bytes", *self.local_address, len(data))
            return
        self.sent += 1
        self._transport.sendto(data, destination)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def open_udp_listener(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    on_datagram: DatagramCallback,
    *,
    receive_buffer: int = 0,
) -> UdpListener:
    """Bind a UDP socket on host:port (port 0 picks a free one); OSError on failure.

    The socket is made by hand so an IPv6 socket is IPv6-only (as asyncio
    does for TCP servers): "::" and "0.0.0.0" can then listen side by side
    on the same port on every platform, and sources never show up as
    IPv4-mapped "::ffff:a.b.c.d" addresses. `receive_buffer` > 0 asks for that many
    bytes of SO_RCVBUF (see the module doc); a refusal leaves the system's default.
    """
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if receive_buffer > 0:
            set_receive_buffer(sock, receive_buffer)
        sock.bind(sockaddr)
        sock.setblocking(False)
        _, protocol = await loop.create_datagram_endpoint(
            lambda: UdpListener(on_datagram), sock=sock
        )
        protocol.receive_buffer = effective_receive_buffer(sock)
    except BaseException:
        sock.close()
        raise
    return protocol


def set_receive_buffer(sock: socket.socket, size: int) -> None:
    """Ask for `size` bytes of receive buffer; the kernel may grant less (Linux: up to
    net.core.rmem_max) or refuse outright (macOS above kern.ipc.maxsockbuf)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError as exc:
        log.debug("SO_RCVBUF %d refused: %s", size, exc)


def effective_receive_buffer(sock: socket.socket) -> int:
    """The receive buffer the application can fill, in bytes. Linux reports twice the size
    granted (it counts its own bookkeeping too, socket(7)), other systems the size itself."""
    reported = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return reported // 2 if sys.platform.startswith("linux") else reported
