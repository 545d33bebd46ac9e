"""Table tests of the sans-IO transport rules (RFC 3261 18.2, RFC 3581)."""

from __future__ import annotations

import pytest

from pbx.sip.errors import LocalProtocolError
from pbx.sip.headers import Via
from pbx.sip.transport import (
    Flow,
    NextHop,
    default_port,
    is_reliable,
    request_next_hop,
    response_next_hop,
    same_address,
    stamp_params,
    stamped_via,
    strip_brackets,
)
from pbx.sip.uri import parse_name_addr, parse_uri

# --- rule 1: stamping -------------------------------------------------------

STAMP_CASES = [
    # (top Via, source, expected received, expected rport param)
    # sent-by is the source and no rport: nothing to add (RFC 3261 18.2.1)
    ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa", ("192.0.2.1", 5060), None, "absent"),
    # sent-by differs from the source: received
    ("SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKa", ("192.0.2.1", 5060), "192.0.2.1", "absent"),
    # a host name is never the source address
    ("SIP/2.0/UDP pc33.example.com;branch=z9hG4bKa", ("192.0.2.1", 5060), "192.0.2.1", "absent"),
    # empty rport: rport=<source port> and received even if identical (RFC 3581 4)
    (
        "SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bKa",
        ("192.0.2.1", 34567),
        "192.0.2.1",
        "34567",
    ),
    # behind a NAT: both
    (
        "SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKa",
        ("203.0.113.9", 1024),
        "203.0.113.9",
        "1024",
    ),
    # rport that already has a value is left alone
    (
        "SIP/2.0/UDP 10.0.0.5;rport=5000;branch=z9hG4bKa",
        ("203.0.113.9", 1024),
        "203.0.113.9",
        "5000",
    ),
    # IPv6 sent-by equal to the source, written differently
    ("SIP/2.0/UDP [2001:db8:0::1]:5060;branch=z9hG4bKa", ("2001:db8::1", 5060), None, "absent"),
    # IPv6 source: received as an IPv6 reference (RFC 5118 4.5: both forms accepted)
    (
        "SIP/2.0/TCP [2001:db8::2];rport;branch=z9hG4bKa",
        ("2001:db8::1", 40000),
        "[2001:db8::1]",
        "40000",
    ),
    # a source written with brackets is the same address
    ("SIP/2.0/UDP [::1]:5062;branch=z9hG4bKa", ("[::1]", 5062), None, "absent"),
]


@pytest.mark.parametrize(("via_text", "source", "received", "rport"), STAMP_CASES)
def test_stamp_params(
    via_text: str, source: tuple[str, int], received: str | None, rport: str
) -> None:
    params = stamp_params(Via.parse(via_text), source)
    assert params.get("received") == received
    assert params.get("rport", "absent") == rport
    assert params["branch"] == "z9hG4bKa"


def test_stamped_via_keeps_sent_by_and_param_order() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.5:5062;rport;branch=z9hG4bK77;x=1")
    stamped = stamped_via(via, ("198.51.100.7", 6000))
    assert stamped is not None
    assert str(stamped) == (
        "SIP/2.0/UDP 10.0.0.5:5062;rport=6000;branch=z9hG4bK77;x=1;received=198.51.100.7"
    )
    assert stamped.rport == 6000
    assert stamped.received == "198.51.100.7"
    # the original is untouched (Via is frozen and its params dict copied)
    assert via.rport is True
    assert "received" not in via.params


def test_stamped_via_none_when_nothing_changes() -> None:
    via = Via.parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKz")
    assert stamped_via(via, ("192.0.2.1", 5060)) is None


def test_stamped_via_overwrites_a_stale_received() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.5;received=1.2.3.4;branch=z9hG4bKz")
    stamped = stamped_via(via, ("192.0.2.44", 5060))
    assert stamped is not None and stamped.received == "192.0.2.44"


# --- rule 2: where a response goes ------------------------------------------

RESPONSE_CASES = [
    # UDP, nothing special: sent-by host and port
    ("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa", None, NextHop("192.0.2.1", 5070, "UDP")),
    # UDP without a port: 5060
    ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa", None, NextHop("192.0.2.1", 5060, "UDP")),
    # UDP with received: that address at the sent-by port (RFC 3261 18.2.2)
    (
        "SIP/2.0/UDP 10.0.0.5:5070;received=203.0.113.9;branch=z9hG4bKa",
        None,
        NextHop("203.0.113.9", 5070, "UDP"),
    ),
    # UDP with received and rport: received:rport (RFC 3581 section 5)
    (
        "SIP/2.0/UDP 10.0.0.5:5070;rport=1024;received=203.0.113.9;branch=z9hG4bKa",
        None,
        NextHop("203.0.113.9", 1024, "UDP"),
    ),
    # rport without received (the stamp always adds both, but be defensive): sent-by port
    (
        "SIP/2.0/UDP 192.0.2.1:5070;rport=1024;branch=z9hG4bKa",
        None,
        NextHop("192.0.2.1", 5070, "UDP"),
    ),
    # rport asked for but never filled in: sent-by port
    ("SIP/2.0/UDP 192.0.2.1:5070;rport;branch=z9hG4bKa", None, NextHop("192.0.2.1", 5070, "UDP")),
    # maddr wins on unreliable transports
    (
        "SIP/2.0/UDP 10.0.0.5:5070;maddr=239.255.255.1;received=203.0.113.9;branch=z9hG4bKa",
        None,
        NextHop("239.255.255.1", 5070, "UDP"),
    ),
    # TCP: the connection it came on, then received at sent-by port
    (
        "SIP/2.0/TCP 10.0.0.5:5070;rport=40000;received=203.0.113.9;branch=z9hG4bKa",
        7,
        NextHop("203.0.113.9", 5070, "TCP", 7),
    ),
    # TCP without port: 5060; no received: sent-by host
    ("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKa", 3, NextHop("192.0.2.1", 5060, "TCP", 3)),
    # TLS without port: 5061
    ("SIP/2.0/TLS 192.0.2.1;branch=z9hG4bKa", 4, NextHop("192.0.2.1", 5061, "TLS", 4)),
    # IPv6: brackets stripped
    ("SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bKa", None, NextHop("2001:db8::1", 5062, "UDP")),
    (
        "SIP/2.0/UDP [2001:db8::1];rport=9;received=[2001:db8::3];branch=z9hG4bKa",
        None,
        NextHop("2001:db8::3", 9, "UDP"),
    ),
]


@pytest.mark.parametrize(("via_text", "conn_id", "expected"), RESPONSE_CASES)
def test_response_next_hop(via_text: str, conn_id: int | None, expected: NextHop) -> None:
    assert response_next_hop(Via.parse(via_text), conn_id) == expected


def test_response_to_bare_ipv6_received() -> None:
    """RFC 3261 25.1 writes via-received as a bare IPv6address (RFC 5118 4.5: accept both)."""
    via = Via("SIP/2.0", "UDP", "[2001:db8::1]", None, {"rport": "9", "received": "2001:db8::2"})
    assert response_next_hop(via) == NextHop("2001:db8::2", 9, "UDP")


def test_stamp_then_route_reaches_the_nat_source() -> None:
    """The whole point of RFC 3581: the answer goes to the NAT's public port."""
    via = Via.parse("SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKq")
    stamped = stamped_via(via, ("203.0.113.9", 61000))
    assert stamped is not None
    assert response_next_hop(stamped) == NextHop("203.0.113.9", 61000, "UDP")


# --- rule 3: where a request goes -------------------------------------------

REQUEST_URI_CASES = [
    ("sip:bob@192.0.2.4", NextHop("192.0.2.4", 5060, "UDP")),
    ("sip:bob@192.0.2.4:5080", NextHop("192.0.2.4", 5080, "UDP")),
    ("sip:bob@192.0.2.4;transport=tcp", NextHop("192.0.2.4", 5060, "TCP")),
    ("sip:bob@192.0.2.4;transport=tls", NextHop("192.0.2.4", 5061, "TLS")),
    ("sips:bob@192.0.2.4", NextHop("192.0.2.4", 5061, "TLS")),
    ("sips:bob@192.0.2.4:5081", NextHop("192.0.2.4", 5081, "TLS")),
    ("sip:bob@pbx.example.com", NextHop("pbx.example.com", 5060, "UDP")),
    ("sip:bob@[2001:db8::4]:5070", NextHop("2001:db8::4", 5070, "UDP")),
    ("sip:bob@example.com;maddr=192.0.2.9", NextHop("192.0.2.9", 5060, "UDP")),
    ("sip:bob@192.0.2.4;transport=sctp", NextHop("192.0.2.4", 5060, "SCTP")),
]


@pytest.mark.parametrize(("uri", "expected"), REQUEST_URI_CASES)
def test_request_next_hop_from_request_uri(uri: str, expected: NextHop) -> None:
    assert request_next_hop(parse_uri(uri)) == expected


def test_route_set_wins_over_request_uri_and_flow() -> None:
    routes = [
        parse_name_addr("<sip:proxy1.example.com:5070;lr;transport=tcp>"),
        parse_name_addr("<sip:proxy2.example.com;lr>"),
    ]
    flow = Flow("203.0.113.9", 40000, "TCP", 12)
    hop = request_next_hop(parse_uri("sip:bob@192.0.2.4"), routes, flow)
    assert hop == NextHop("proxy1.example.com", 5070, "TCP")


def test_registered_flow_wins_over_contact_uri() -> None:
    """A contact registered over TCP from behind a NAT: its private Contact is unreachable."""
    flow = Flow("203.0.113.9", 40000, "TCP", 12)
    hop = request_next_hop(parse_uri("sip:alice@10.0.0.5:5060;transport=tcp"), (), flow)
    assert hop == NextHop("203.0.113.9", 40000, "TCP", 12)
    assert hop.address == ("203.0.113.9", 40000)


def test_tel_uri_has_no_sip_next_hop() -> None:
    with pytest.raises(LocalProtocolError, match="tel:"):
        request_next_hop(parse_uri("tel:+15551234567"))


# --- helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "reliable", "port"),
    [("UDP", False, 5060), ("tcp", True, 5060), ("TLS", True, 5061), ("SCTP", True, 5060)],
)
def test_transport_properties(transport: str, reliable: bool, port: int) -> None:
    assert is_reliable(transport) is reliable
    assert default_port(transport) == port


@pytest.mark.parametrize(
    ("host", "ip", "same"),
    [
        ("192.0.2.1", "192.0.2.1", True),
        ("192.0.2.1", "192.0.2.2", False),
        ("[::1]", "::1", True),
        ("::1", "0:0:0:0:0:0:0:1", True),
        ("example.com", "192.0.2.1", False),
        ("", "192.0.2.1", False),
    ],
)
def test_same_address(host: str, ip: str, same: bool) -> None:
    assert same_address(host, ip) is same


def test_strip_brackets() -> None:
    assert strip_brackets("[::1]") == "::1"
    assert strip_brackets("192.0.2.1") == "192.0.2.1"
