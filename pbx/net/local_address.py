"""Which of our addresses a peer can reach: for Via, Contact and the SDP c= line.

A PBX listening on 0.0.0.0 must still write a concrete address into what it
sends, and the right one depends on the peer: 127.0.0.1 for a softphone on
the same machine, the LAN address for a desk phone. The operating system
knows: connecting a UDP socket (which sends nothing) and reading its local
address gives the source address the kernel would route from. This works the
same on Linux, macOS and Windows. A configured public address overrides it,
for a PBX behind a port-forwarding router.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache

from pbx.sip.dialog import LocalEndpoint
from pbx.sip.transport import strip_brackets

WILDCARDS = frozenset({"0.0.0.0", "::", ""})


@dataclass(frozen=True, slots=True)
class LocalFace:
    """What we show one peer: our host, SIP port, transport; derived Contact and sent-by."""

    host: str
    port: int
    transport: str

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def endpoint(self, user: str = "pbx") -> LocalEndpoint:
        suffix = "" if self.transport == "UDP" else f";transport={self.transport.lower()}"
        return LocalEndpoint(
            contact=f"<sip:{user}@{self.hostport}{suffix}>",
            sent_by=self.hostport,
            transport=self.transport,
        )


class LocalAddresses:
    """Picks our face towards a destination from the bound listeners."""

    def __init__(
        self, bound: dict[str, list[tuple[str, int]]], public_address: str | None = None
    ) -> None:
        self.bound = bound
        self.public_address = public_address

    def face(self, destination: tuple[str, int], transport: str) -> LocalFace:
        transport = transport.upper()
        dest_host = strip_brackets(destination[0])
        family = family_of(dest_host)
        candidates = self.bound.get(transport) or self.bound.get("UDP") or []
        chosen = next((a for a in candidates if family_of(a[0]) == family), None)
        if chosen is None:
            if not candidates:
                raise RuntimeError(f"no {transport} listener to reach {dest_host}")
            chosen = candidates[0]
        host, port = chosen[0], chosen[1]
        if host in WILDCARDS:
            host = self.public_address or route_source(dest_host)
        return LocalFace(host, port, transport)


def family_of(host: str) -> int:
    """The socket family of an address ("[::1]" and "::1" alike); a host name counts as IPv4."""
    try:
        version = ipaddress.ip_address(strip_brackets(host)).version
    except ValueError:
        return socket.AF_INET
    return socket.AF_INET6 if version == 6 else socket.AF_INET


@lru_cache(maxsize=1024)
def route_source(destination: str) -> str:
    """The local address the kernel would send from towards `destination`."""
    family = family_of(destination)
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((destination, 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "::1" if family == socket.AF_INET6 else "127.0.0.1"
