"""The UDP listener: one datagram socket, datagrams in, datagrams out.

A datagram is one SIP message (RFC 3261 18.3), so there is no framing here:
each datagram goes to the `on_datagram(data, source)` callback with the
source as a plain `(host, port)` pair (IPv6 flow info and scope dropped).
ICMP errors (port unreachable after a phone went away) are logged and
otherwise ignored: the transaction layer's timers notice the silence.
"""

from __future__ import annotations

import asyncio
import logging
import socket
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
    loop: asyncio.AbstractEventLoop, host: str, port: int, on_datagram: DatagramCallback
) -> UdpListener:
    """Bind a UDP socket on host:port (port 0 picks a free one); OSError on failure.

    The socket is made by hand so an IPv6 socket is IPv6-only (as asyncio
    does for TCP servers): "::" and "0.0.0.0" can then listen side by side
    on the same port on every platform, and sources never show up as
    IPv4-mapped "::ffff:a.b.c.d" addresses.
    """
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.setblocking(False)
        _, protocol = await loop.create_datagram_endpoint(
            lambda: UdpListener(on_datagram), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    return protocol
