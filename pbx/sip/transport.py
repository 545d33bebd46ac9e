"""Transport-layer rules of SIP, without any I/O (RFC 3261 section 18, RFC 3581).

This module owns three decisions the asyncio shell in `pbx.net` must not make
on its own, so they can be table-tested with no sockets and no clock:

1. Stamping an incoming request's topmost Via (RFC 3261 18.2.1, RFC 3581
   section 4): `received=<source ip>` when the sent-by host is not the address
   the request came from (and always when the client asked for `rport`), and
   `rport=<source port>` when the Via carries an empty `rport`. This is what
   lets responses find a phone behind a NAT.
2. Where a response goes (RFC 3261 18.2.2, RFC 3581 section 5):
   `response_next_hop(via, conn_id)`.
3. Where a request goes (RFC 3261 8.1.2, 16.6 step 6; RFC 3263 section 4.1
   without DNS SRV): `request_next_hop(uri, routes, flow)`. A binding that
   registered over TCP (or from behind a NAT) remembers the `Flow` it arrived
   on; requests to that contact reuse the flow (the idea of RFC 5626 section
   5.3, without its instance-id machinery).

Names are resolved by the shell (plain A/AAAA lookups); the host handed back
here is the literal from the message, IPv6 without brackets.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from pbx.sip.errors import LocalProtocolError
from pbx.sip.headers import Via, built_via
from pbx.sip.message import Request
from pbx.sip.uri import NameAddr, SipUri, Uri

RELIABLE_TRANSPORTS = frozenset({"TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})
"""Transports with connections; a response goes back on the one the request used."""

SECURE_TRANSPORTS = frozenset({"TLS", "TLS-SCTP", "WSS"})

DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
"""RFC 3261 19.1.2 / 18.2.2: the port when a URI or Via names none."""


@dataclass(frozen=True, slots=True)
class NextHop:
    """Where to send one message: an address, a transport and maybe a live connection.

    `conn_id` names a connection the shell holds (the one a request came in on,
    or the one a binding registered over). The shell uses it when it is still
    open, and otherwise falls back to (host, port, transport): RFC 3261 18.2.2
    says a server opens a new connection when the original one is gone.
    """

    host: str
    port: int
    transport: str
    conn_id: Hashable | None = None
    srv: bool = False
    """`host` is a domain whose servers DNS SRV names (RFC 3263 §4.2, pbx.sip.locate): `port`
    is where to go only when it publishes none."""

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


@dataclass(frozen=True, slots=True)
class Flow:
    """The (source address, transport, connection) a request arrived on.

    A registrar stores one with each binding so later requests to that contact
    can reach a phone behind a NAT or reuse its TCP connection.
    """

    host: str
    port: int
    transport: str
    conn_id: Hashable | None = None

    def next_hop(self) -> NextHop:
        return NextHop(self.host, self.port, self.transport, self.conn_id)


def is_reliable(transport: str) -> bool:
    return transport.upper() in RELIABLE_TRANSPORTS


def strip_brackets(host: str) -> str:
    """'[::1]' -> '::1'; anything else unchanged (hosts in tuples and sockets are bare)."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


@functools.lru_cache(maxsize=1024)
def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `host` spells ('[::1]' too), or None for a name. Cached: phones repeat."""
    try:
        return ipaddress.ip_address(strip_brackets(host))
    except ValueError:
        return None


def same_address(host: str, ip: str) -> bool:
    """True when `host` is a literal address equal to `ip` (so '::1' equals '0:0::1')."""
    address = ip_literal(host)
    return address is not None and address == ip_literal(ip)


def default_port(transport: str) -> int:
    """5061 for TLS-based transports, else 5060 (RFC 3261 18.2.2, 19.1.2)."""
    return 5061 if transport.upper() in SECURE_TRANSPORTS else 5060


# --- rule 1: stamping the top Via of an incoming request -------------------


def stamp_params(via: Via, source: tuple[str, int]) -> dict[str, str | None]:
    """The Via params after RFC 3261 18.2.1 and RFC 3581 section 4 for `source`.

    `received` is added when the sent-by host is not the source address, and
    always when the client sent an empty `rport` (RFC 3581 section 4 says the
    server MUST then insert `received` even if identical). `rport` gets the
    source port only when it was present without a value.

    An IPv6 `received` is written as a bracketed reference. RFC 3261 25.1's
    ABNF says a bare IPv6address, but RFC 5118 4.5 notes both forms are in use
    and asks receivers to accept both; the bracketed form is what pjsip-based
    phones write and what every parser that splits params on ':' survives.
    Reading either form is handled by `strip_brackets`.
    """
    ip, port = strip_brackets(source[0]), source[1]
    params = dict(via.params)
    wants_rport = "rport" in params and params["rport"] in (None, "")
    if wants_rport:
        params["rport"] = str(port)
    if wants_rport or not same_address(via.host, ip):
        params["received"] = f"[{ip}]" if ":" in ip else ip
    return params


def stamped_via(via: Via, source: tuple[str, int]) -> Via | None:
    """The stamped copy of `via`, or None when nothing needs to change."""
    params = stamp_params(via, source)
    if params == via.params:
        return None
    return built_via(via.protocol, via.transport, via.host, via.port, params)


def stamp_request(request: Request, source: tuple[str, int]) -> bool:
    """Stamp `request`'s topmost Via in place; True when the message changed.

    The Via values keep their order. They are written back as one header
    line holding a comma-separated list, which is the same header field
    (RFC 3261 7.3.1) and keeps the Vias where the first one stood, near the
    top where proxies look for them.
    """
    headers = request.headers
    if "Via" not in headers:
        return False
    new_top = stamped_via(request.via, source)
    if new_top is None:
        return False
    values = headers.getall("Via")
    headers.set("Via", ", ".join([str(new_top), *values[1:]]))
    return True


_TOP_VIA = ("Via", "via")
"""Where the message keeps its parsed top Via: the (header, field) key of the `via` field in
the header's parse cache (pbx.sip.message; test_core_via_cache proves the two agree)."""
_ALL_VIAS = ("Via", "vias")
"""The same for the `vias` field (every Via value, parsed)."""


def stamp_parsed(request: Request, source: tuple[str, int]) -> None:
    """stamp_request, keeping the stamped Via parsed.

    Rewriting the Via header drops its parsed value, and the transaction key, the response
    destination and the response's Via would parse the new text again; the stamped Via is
    the value that text parses to, so it goes back into the message's cache.
    """
    top = request.via
    new_top = stamped_via(top, source)
    if new_top is None:
        return
    headers = request.headers
    text = str(new_top)
    index = headers.first_values()
    alone = "," not in index.get("Via", ",") and (
        len(index) == len(headers) or headers.name_counts().get("Via") == 1
    )  # one Via value on one line (the counts are needed only when some header repeats)
    if alone:
        headers.replace_first("Via", text)
    else:  # more Vias follow the top one: one line holds them all
        headers.set("Via", ", ".join([text, *headers.getall("Via")[1:]]))
    cache = headers._cache
    cache[_TOP_VIA] = new_top
    if alone:  # the whole Via list is the stamped one: validate() need not split it again
        cache[_ALL_VIAS] = [new_top]


# --- rule 2: where a response goes ------------------------------------------


def response_next_hop(via: Via, conn_id: Hashable | None = None) -> NextHop:
    """RFC 3261 18.2.2 with RFC 3581 section 5, for the topmost Via of a response.

    Reliable transport: the connection the request came on (`conn_id`), and
    if it is gone the received address (or sent-by host) at the sent-by port.
    Unreliable: `maddr` first; then received:rport when both are present;
    then the received address or sent-by host, at the sent-by port or 5060.
    """
    transport = via.transport.upper()
    port = via.port or default_port(transport)
    host = strip_brackets(via.received or via.host)
    if is_reliable(transport):
        return NextHop(host, port, transport, conn_id)
    if via.maddr:
        return NextHop(strip_brackets(via.maddr), port, transport)
    rport = via.rport
    if via.received and isinstance(rport, int) and not isinstance(rport, bool):
        return NextHop(host, rport, transport)
    return NextHop(host, port, transport)


# --- rule 3: where a request goes -------------------------------------------


def uri_next_hop(uri: Uri) -> NextHop:
    """Host, port and transport for a SIP/SIPS URI (RFC 3263 4.1-4.2, no SRV).

    `maddr` overrides the host (RFC 3261 19.1.1); an explicit `transport`
    param wins, else SIPS means TLS and SIP means UDP; the port defaults to
    5061 for TLS and SIPS, else 5060.
    """
    if not isinstance(uri, SipUri):
        raise LocalProtocolError(f"no SIP transport can reach {uri}")
    transport = (uri.transport or ("TLS" if uri.scheme == "sips" else "UDP")).upper()
    maddr = uri.params.get("maddr")
    host = strip_brackets(maddr or uri.host)
    port = uri.port or (5061 if uri.scheme == "sips" else default_port(transport))
    return NextHop(host, port, transport)


def request_next_hop(
    uri: Uri, routes: Sequence[NameAddr] = (), flow: Flow | None = None
) -> NextHop:
    """The next hop of an outgoing request (RFC 3261 8.1.2, 12.2.1.1, 16.12).

    A non-empty route set wins: its first URI is the next hop (loose and strict
    routing both send there first). Otherwise a flow remembered from a
    registration (source address and connection of that REGISTER) reaches the
    contact through its NAT or over its TCP connection. Otherwise the
    Request-URI decides.
    """
    if routes:
        return uri_next_hop(routes[0].uri)
    if flow is not None:
        return flow.next_hop()
    return uri_next_hop(uri)
