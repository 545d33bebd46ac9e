"""The trunk dialog's Test button: can the carrier be found, and does it answer SIP?

`check_host` is the field validation (an IP address or a host name, no
URI, no spaces). `probe_trunk` runs on the app's loop: it resolves the host,
sends one OPTIONS over UDP (RFC 3261 11: any answer, even 404 or 405, shows
a SIP server is there) and says what happened in plain words. TCP trunks
are probed by opening a connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
import socket

from pbx.net.dns import Locator
from pbx.sip.locate import wants_srv
from pbx.sip.transport import NextHop

_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def check_host(host: str) -> str | None:
    """None when `host` is usable, else a sentence saying what is wrong with it."""
    host = host.strip()
    if not host:
        return "Enter the carrier's SIP server (a host name such as sip.example.com or an IP)."
    if host.lower().startswith(("sip:", "sips:")) or "@" in host or "/" in host:
        return f"'{host}' is an address, not a server: enter only the host, e.g. sip.example.com."
    try:
        ipaddress.ip_address(host.strip("[]"))
        return None
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return (
            f"'{host}' is not a valid host name: use letters, digits, dots and dashes "
            "(e.g. sip.example.com) or an IP address."
        )
    return None


class _Answer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.first_line: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not self.first_line.done():
            self.first_line.set_result(data.split(b"\r\n", 1)[0].decode("utf-8", "replace"))

    def error_received(self, exc: Exception) -> None:
        if not self.first_line.done():
            self.first_line.set_exception(exc)


def _options(host: str, port: int, local: tuple[str, int]) -> bytes:
    branch = "z9hG4bK" + secrets.token_hex(8)
    lhost = f"[{local[0]}]" if ":" in local[0] else local[0]
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {lhost}:{local[1]};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:deskphone@{lhost}>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:{host}>\r\n"
        f"Call-ID: {secrets.token_hex(12)}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Accept: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def probe_trunk(
    host: str,
    port: int,
    transport: str = "UDP",
    timeout: float = 3.0,
    locator: Locator | None = None,
) -> str:
    """One sentence for the user: reachable or not, and why. A host name on port 5060 is
    looked up as the PBX will look it up: DNS SRV records first (RFC 3263)."""
    problem = check_host(host)
    if problem is not None:
        return problem
    loop = asyncio.get_running_loop()
    if wants_srv(host, port_given=port != 5060):
        own = locator is None
        locator = Locator() if locator is None else locator
        try:
            hop = NextHop(host, port, transport.upper(), srv=True)
            targets = await asyncio.wait_for(locator.locate(hop), 3 * timeout)
        except TimeoutError:
            targets = []
        finally:
            if own:
                await locator.aclose()
        if not targets:
            return f"The server name '{host}' cannot be found: check the spelling."
        address = (targets[0].host, targets[0].port)
    else:
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM), timeout
            )
        except (OSError, TimeoutError):
            return f"The server name '{host}' cannot be found: check the spelling."
        address = (str(infos[0][4][0]), int(infos[0][4][1]))
    if transport.upper() == "TCP":
        return await _probe_tcp(host, address, timeout)
    transport_, protocol = await loop.create_datagram_endpoint(_Answer, remote_addr=address)
    try:
        local = transport_.get_extra_info("sockname")[:2]
        transport_.sendto(_options(host, port, local))
        line = await asyncio.wait_for(protocol.first_line, timeout)
    except (TimeoutError, OSError):
        return f"No answer from {host} ({address[0]}:{address[1]}) within {timeout:g} s."
    finally:
        transport_.close()
    if not line.startswith("SIP/2.0 "):
        return f"{host} answered, but not in SIP."
    return f"{host} answered: {line[8:]}. The carrier is reachable."


async def _probe_tcp(host: str, address: tuple[str, int], timeout: float) -> str:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(*address), timeout)
    except (TimeoutError, OSError):
        return f"Cannot connect to {host} ({address[0]}:{address[1]}) over TCP."
    writer.close()
    return f"{host} accepts TCP connections on port {address[1]}."
