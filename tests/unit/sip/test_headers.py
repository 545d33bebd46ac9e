"""Via, CSeq, Contact and comma splitting (RFC 3261 7.3.1, 20.10, 20.16, 20.42; RFC 3581)."""

from __future__ import annotations

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.headers import STAR, Contact, CSeq, Via, parse_contacts, split_header_values
from pbx.sip.uri import SipUri


def test_via_fields_and_canonical_form() -> None:
    via = Via.parse(
        "SIP / 2.0 / udp  PC33.Example.com : 5066 ; branch = z9hG4bK77 ; "
        "received=192.0.2.4;rport=6000;maddr=[::1]"
    )
    assert (via.protocol, via.transport, via.host, via.port) == (
        "SIP/2.0",
        "UDP",
        "pc33.example.com",
        5066,
    )
    assert (via.branch, via.received, via.rport, via.maddr) == (
        "z9hG4bK77",
        "192.0.2.4",
        6000,
        "[::1]",
    )
    assert via.sent_by == ("pc33.example.com", 5066)
    assert (
        str(via)
        == "SIP/2.0/UDP pc33.example.com:5066;branch=z9hG4bK77;received=192.0.2.4;rport=6000;"
        "maddr=[::1]"
    )
    assert Via.parse(str(via)) == via


@pytest.mark.parametrize(
    ("text", "rport", "sent_by"),
    [("SIP/2.0/UDP h", None, ("h", 5060)), ("SIP/2.0/TCP h;rport", True, ("h", 5060)),
     ("SIP/2.0/TLS [2001:db8::1]", None, ("[2001:db8::1]", 5061)),
     ("SIP/2.0/WS h:80;rport=1", 1, ("h", 80))],
)  # fmt: skip
def test_via_rport_and_default_ports(text: str, rport: object, sent_by: tuple[str, int]) -> None:
    via = Via.parse(text)
    assert via.rport == rport and via.sent_by == sent_by


def test_via_build() -> None:
    via = Via(
        transport="TCP", host="127.0.0.1", port=5070, params={"branch": "z9hG4bKa", "rport": None}
    )
    assert str(via) == "SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKa;rport"


@pytest.mark.parametrize(
    "text",
    ["", "SIP/2.0 h", "SIP/2.0/UDP", "SIP/2.0/UDP h;", "SIP/2.0/UDP h;;", "SIP/2.0/UDP h:99999",
     "SIP/2.0/UDP h:x", "SIP/2.0/UDP h;branch=", "SIP/2.0/UDP h junk", "SIP/2.0/UDP h,h2"],
)  # fmt: skip
def test_bad_via(text: str) -> None:
    with pytest.raises(ParseError) as info:
        Via.parse(text)
    assert info.value.reason in ("Bad Via", "Bad Via sent-by")


def test_bad_rport_value() -> None:
    with pytest.raises(ParseError, match="Bad Via rport"):
        _ = Via.parse("SIP/2.0/UDP h;rport=70000").rport


def test_cseq() -> None:
    assert CSeq.parse(" 0009   INVITE ") == CSeq(9, "INVITE")
    assert str(CSeq(4711, "BYE")) == "4711 BYE"
    for bad in ["", "1", "INVITE", "1 IN VITE", "-1 BYE", "2147483648 BYE", "99999999999 BYE"]:
        with pytest.raises(ParseError, match="Bad CSeq"):
            CSeq.parse(bad)


def test_contacts() -> None:
    contacts = parse_contacts(
        '"Mr. Watson" <sip:watson@worcester.example.com>;q=0.7; expires=3600, '
        '"Mr. Watson, again" <mailto:watson@bell.example.com> ;q=0.1, sip:x@h;expires=0'
    )
    assert [c.display for c in contacts] == ["Mr. Watson", "Mr. Watson, again", None]
    assert [c.q for c in contacts] == [0.7, 0.1, None]
    assert [c.expires for c in contacts] == [3600, None, 0]
    assert not any(c.is_star for c in contacts)
    assert contacts[2].uri == SipUri("sip", "x", None, "h")
    assert str(contacts[0]) == '"Mr. Watson" <sip:watson@worcester.example.com>;q=0.7;expires=3600'
    assert isinstance(contacts[0], Contact)


def test_star_contact() -> None:
    assert parse_contacts(" * ") == [STAR]
    assert STAR.is_star and str(STAR) == "*"
    with pytest.raises(ParseError, match="Bad Contact"):
        parse_contacts("*, <sip:a@h>")


@pytest.mark.parametrize(
    ("params", "reason"),
    [(";q=1.5", "Bad Contact q"), (";q=x", "Bad Contact q"), (";expires=-1", "Bad Contact expires"),
     (";expires=4294967296", "Bad Contact expires")],
)  # fmt: skip
def test_bad_contact_values(params: str, reason: str) -> None:
    (contact,) = parse_contacts("<sip:a@h>" + params)
    with pytest.raises(ParseError) as info:
        _ = contact.q if "q=" in params else contact.expires
    assert info.value.reason == reason


def test_contact_expires_limit() -> None:
    assert parse_contacts("<sip:a@h>;expires=4294967295")[0].expires == 2**32 - 1
    assert parse_contacts("<sip:a@h>;q=1.000")[0].q == 1.0


def test_split_header_values() -> None:
    assert split_header_values("a, b ,c") == ["a", "b", "c"]
    assert split_header_values('"x, y" <sip:a@h;p=1,2>, <sip:b@h>') == [
        '"x, y" <sip:a@h;p=1,2>',
        "<sip:b@h>",
    ]
    assert split_header_values('"a \\" , b" <sip:a@h>') == ['"a \\" , b" <sip:a@h>']
    assert split_header_values(" , a,, ") == ["a"]
    with pytest.raises(ParseError, match="Unterminated quoted string"):
        split_header_values('"open, <sip:a@h>')
    with pytest.raises(ParseError, match="Unterminated <"):
        split_header_values('"x" <sip:a@h, b')


def test_via_with_bare_ipv6_received() -> None:
    via = Via.parse("SIP/2.0/UDP [2001:db8::1]:5060;received=2001:db8::2;rport=9;branch=z9hG4bKv6")
    assert (via.received, via.rport, via.branch) == ("2001:db8::2", 9, "z9hG4bKv6")
    assert via.sent_by == ("[2001:db8::1]", 5060)
    assert Via.parse(str(via)) == via
    with pytest.raises(ParseError):
        Via.parse("SIP/2.0/UDP h;received=1:2")
