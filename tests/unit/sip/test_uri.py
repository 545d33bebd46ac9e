"""SIP/SIPS/tel URIs and name-addr / addr-spec (RFC 3261 19.1, 20.10; RFC 3966)."""

from __future__ import annotations

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.uri import AbsoluteUri, NameAddr, SipUri, TelUri, parse_name_addr, parse_uri


def test_full_sip_uri() -> None:
    uri = parse_uri(
        "sips:Alice:secret@Atlanta.Example.COM:5061;transport=tcp;lr;maddr=239.255.255.1?subject=project%20x&priority=urgent"
    )
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password) == ("sips", "Alice", "secret")
    assert (uri.host, uri.port, uri.host_port) == (
        "atlanta.example.com",
        5061,
        "atlanta.example.com:5061",
    )
    assert uri.params == {"transport": "tcp", "lr": None, "maddr": "239.255.255.1"}
    assert uri.transport == "TCP"
    assert uri.headers == {"subject": "project x", "priority": "urgent"}
    assert str(uri) == (
        "sips:Alice:secret@atlanta.example.com:5061;transport=tcp;lr;maddr=239.255.255.1"
        "?subject=project%20x&priority=urgent"
    )
    assert parse_uri(str(uri)) == uri


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("sip:[::1]:5070", "[::1]", 5070), ("sip:u@[2001:DB8::10]", "[2001:db8::10]", None),
     ("sip:192.0.2.1", "192.0.2.1", None), ("SIP:h.example.com:0", "h.example.com", 0)],
)  # fmt: skip
def test_hosts_and_ports(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri) and uri.scheme == "sip"
    assert (uri.host, uri.port, uri.user) == (host, port, "u" if "u@" in text else None)


def test_escaping_round_trip() -> None:
    uri = parse_uri("sip:%61lice%20smith;x=%2F@h;p=a%3Bb")
    assert isinstance(uri, SipUri)
    assert uri.user == "alice smith;x=/"
    assert uri.params == {"p": "a;b"}
    assert str(uri) == "sip:alice%20smith;x=/@h;p=a%3Bb"
    assert str(SipUri("sip", "a@b:ü", None, "h")) == "sip:a%40b%3A%C3%BC@h"
    assert parse_uri(str(SipUri("sip", "a@b:ü", None, "h"))).user == "a@b:ü"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp", True),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5", True),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5", True),
        (
            "sip:alice@atlanta.com?subject=project%20x",
            "sip:alice@atlanta.com?subject=project x".replace(" ", "%20"),
            True,
        ),
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP", False),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060", False),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp", False),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting", False),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off", False),
        ("sip:bob@h", "sips:bob@h", False),
    ],
)
def test_equality_rfc3261_19_1_4(a: str, b: str, equal: bool) -> None:
    assert (parse_uri(a) == parse_uri(b)) is equal
    if equal:
        assert hash(parse_uri(a)) == hash(parse_uri(b))


def test_replace() -> None:
    uri = parse_uri("sip:bob@h:5060;transport=udp")
    assert isinstance(uri, SipUri)
    moved = uri.replace(host="10.0.0.2", port=None, params={})
    assert str(moved) == "sip:bob@10.0.0.2"
    assert str(uri) == "sip:bob@h:5060;transport=udp"


def test_tel_and_other_schemes() -> None:
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert tel == TelUri("+1-201-555-0123", {"phone-context": "example.com"})
    assert str(tel) == "tel:+1-201-555-0123;phone-context=example.com"
    assert parse_uri("urn:service:sos") == AbsoluteUri("urn", "service:sos")
    assert str(parse_uri("http://www.example.com/a?b")) == "http://www.example.com/a?b"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "Bad URI scheme"), ("sip", "Bad URI scheme"), ("1sip:a", "Bad URI scheme"),
     ("sip:", "Bad URI"), ("sip:a b@h", "Bad URI"), ("sip:<a>@h", "Bad URI"),
     ("sip:a@h:99999", "Bad URI host"), ("sip:a@h:x", "Bad URI host"), ("sip:a@", "Bad URI host"),
     ("sip:a@[::1", "Bad URI host"), ("sip:a@h;;", "Bad URI parameter"),
     ("sip:a@h;=b", "Bad URI parameter"),
     ("sip:a%4@h", "Bad URI user"), ("sip:a%zz@h", "Bad URI user"), ("sip:a@h?x", "Bad URI header"),
     ("sip:a@h;p=%G1", "Bad URI parameter"), ("tel:phone", "Bad tel URI"),
     ("sip:a\"b@h", "Bad URI")],
)  # fmt: skip
def test_bad_uris(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_uri(text)
    assert info.value.reason == reason


def test_name_addr_forms() -> None:
    quoted = parse_name_addr('"Alice \\"A\\" Liddell" <sip:alice@h;transport=tcp>;tag=88sja8x;x')
    assert quoted.display == 'Alice "A" Liddell'
    assert quoted.uri.params == {"transport": "tcp"}  # type: ignore[union-attr]
    assert quoted.params == {"tag": "88sja8x", "x": None}
    assert quoted.tag == "88sja8x"
    assert str(quoted) == '"Alice \\"A\\" Liddell" <sip:alice@h;transport=tcp>;tag=88sja8x;x'
    tokens = parse_name_addr("Bob  Smith <sip:bob@h>")
    assert tokens.display == "Bob  Smith" and tokens.params == {}
    bare = parse_name_addr("sip:carol@h;tag=5;expires=60")
    assert bare.display is None and bare.uri == SipUri("sip", "carol", None, "h")
    assert bare.params == {"tag": "5", "expires": "60"}
    assert str(bare) == "<sip:carol@h>;tag=5;expires=60"
    assert parse_name_addr("<sip:d@h>").display is None
    assert parse_name_addr('"" <sip:d@h>').display == ""


def test_with_tag_is_a_new_value() -> None:
    addr = parse_name_addr("<sip:a@h>;x=1")
    tagged = addr.with_tag("abc")
    assert tagged.tag == "abc" and addr.tag is None
    assert str(tagged) == "<sip:a@h>;x=1;tag=abc"
    assert NameAddr(None, SipUri("sip", "a", None, "h")).params == {}


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "Empty address"), ('"unterminated <sip:a@h>', "Unterminated quoted string"),
     ('"a" sip:a@h', "Bad name-addr"), ("a,b <sip:a@h>", "Bad display name"),
     ("<sip:a@h", "Unterminated <"), ("< sip:a@h>", "Bad addr-spec"),
     ("sip:a@h?x=y", "Bad addr-spec"), ("<sip:a@h>;;", "Bad header parameter"),
     ("<sip:a@h> junk", "Bad header parameter"), ("<sip:a@h>;t=", "Bad header parameter"),
     ("<sip:a@h>;t=\"open", "Bad header parameter")],
)  # fmt: skip
def test_bad_name_addrs(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_name_addr(text)
    assert info.value.reason == reason


def test_addr_spec_with_angle_bracket_in_a_quoted_parameter() -> None:
    addr = parse_name_addr('sip:a@h;x="<y>";tag=1')
    assert addr.display is None and addr.uri == SipUri("sip", "a", None, "h")
    assert addr.params == {"x": '"<y>"', "tag": "1"}


def test_repeated_parameters_keep_the_first() -> None:
    addr = parse_name_addr("<sip:a@h>;tag=1;TAG=2;x")
    assert addr.params == {"tag": "1", "x": None}
    uri = parse_uri("sip:a@h;lr;LR=x;p=1")
    assert isinstance(uri, SipUri) and uri.params == {"lr": None, "p": "1"}
