"""Requests and responses: parse, typed accessors, serialize, make_response."""

from __future__ import annotations

import pytest

from pbx.sip.errors import LocalProtocolError, ParseError
from pbx.sip.headers import CSeq
from pbx.sip.message import (
    REASON_PHRASES,
    Headers,
    Request,
    Response,
    canonical_name,
    parse_message,
)
from pbx.sip.uri import SipUri
from pbx.sip.validate import validate

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60;q=0.7\r\n"
    b"Content-Type: application/sdp; charset=utf-8\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_request_start_line_and_accessors() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request) and msg.is_request
    assert msg.method == "INVITE"
    assert msg.uri == SipUri("sip", "bob", None, "biloxi.example.com")
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.via.branch == "z9hG4bK776asdhds"
    assert msg.via.sent_by == ("pc33.atlanta.example.com", 5062)
    assert msg.via.rport is True
    assert msg.from_tag == "1928301774"
    assert msg.to_tag is None
    assert msg.from_.display == "Alice"
    assert msg.max_forwards == 70
    assert msg.expires is None
    assert [str(r.uri) for r in msg.record_routes] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    assert msg.contacts[0].expires == 60 and msg.contacts[0].q == 0.7
    assert msg.content_type == "application/sdp"
    assert msg.body == b"v=0\n"


def test_response_status_line() -> None:
    msg = parse_message(b"SIP/2.0 180 Ringing\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(msg, Response) and not msg.is_request
    assert (msg.status, msg.reason) == (180, "Ringing")
    assert msg.cseq.method == "INVITE"


def test_round_trip_is_byte_exact_and_canonical() -> None:
    msg = parse_message(INVITE)
    data = bytes(msg)
    assert data.endswith(b"Content-Length: 4\r\n\r\nv=0\n")
    again = parse_message(data)
    assert bytes(again) == data
    assert list(again.headers) == list(msg.headers)


def test_compact_forms_and_case_insensitive_names() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\ni: abc\r\nf: <sip:x@y>;tag=1\r\nt: sip:z@w\r\n"
        b"v: SIP/2.0/TCP h;branch=z9hG4bKx\r\nCSEQ: 2 OPTIONS\r\nl: 0\r\nm: *\r\n\r\n"
    )
    msg = parse_message(data)
    assert [n for n, _ in msg.headers] == [
        "Call-ID", "From", "To", "Via", "CSeq", "Content-Length", "Contact"
    ]  # fmt: skip
    assert msg.call_id == "abc"
    assert msg.headers.get("call-id") == "abc"
    assert msg.via.transport == "TCP"
    assert msg.contacts[0].is_star


@pytest.mark.parametrize(
    ("raw", "canon"),
    [("i", "Call-ID"), ("call-id", "Call-ID"), ("cseq", "CSeq"),
     ("www-authenticate", "WWW-Authenticate"), ("x-foo-bar", "X-Foo-Bar"), ("L", "Content-Length"),
     ("k", "Supported"), ("y", "Identity"), ("o", "Event")],
)  # fmt: skip
def test_canonical_name(raw: str, canon: str) -> None:
    assert canonical_name(raw) == canon


def test_unknown_header_keeps_its_mixed_case_spelling_through_a_round_trip() -> None:
    msg = parse_message(
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1"
        b"\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nX-Trace-ABC: 42\r\n\r\n"
    )
    assert ("X-Trace-ABC", "42") in list(msg.headers)
    assert msg.headers.get("x-trace-abc") == "42"
    assert canonical_name("X-TRACE-ABC") == "X-Trace-ABC"
    assert b"\r\nX-Trace-ABC: 42\r\n" in bytes(msg)


def test_headers_multimap_and_cache_invalidation() -> None:
    msg = parse_message(INVITE)
    assert msg.via.branch == "z9hG4bK776asdhds"
    msg.headers.set("Via", "SIP/2.0/TCP other.example.com;branch=z9hG4bKnew")
    assert msg.via.branch == "z9hG4bKnew"
    assert [n for n, _ in msg.headers][0] == "Via"
    msg.headers.add("via", "SIP/2.0/UDP third;branch=z9hG4bK3")
    assert [v.host for v in msg.vias] == ["other.example.com", "third"]
    msg.headers.remove("VIA")
    assert "Via" not in msg.headers
    with pytest.raises(ParseError, match="Missing Via"):
        _ = msg.via
    copy = msg.headers.copy()
    copy.add("X-A", "1")
    assert "X-A" not in msg.headers and len(copy) == len(msg.headers) + 1


def test_getall_splits_list_headers_only() -> None:
    headers = Headers(
        [("Allow", "INVITE, ACK"), ("allow", "BYE"), ("Authorization", 'Digest a="1,2", b=3'),
         ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"), ("Route", '"A, B" <sip:a>, <sip:b;x=",">')]
    )  # fmt: skip
    assert headers.getall("Allow") == ["INVITE", "ACK", "BYE"]
    assert headers.getall("Authorization") == ['Digest a="1,2", b=3']
    assert headers.getall("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.getall("Route") == ['"A, B" <sip:a>', '<sip:b;x=",">']
    assert headers.get("X-Missing", "d") == "d"


def test_folded_lines_are_unfolded() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n  two\r\n\tthree\r\nTo:\r\n sip:t@x\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    msg = parse_message(data)
    assert msg.headers.get("Subject") == "one two three"
    assert msg.headers.get("To") == "sip:t@x"


def test_udp_body_rules() -> None:
    head = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n"
    assert parse_message(head + b"Content-Length: 3\r\n\r\nabcdef").body == b"abc"
    assert parse_message(head + b"\r\nbody without length").body == b"body without length"
    with pytest.raises(ParseError, match="Bad Content-Length"):
        parse_message(head + b"Content-Length: 30\r\n\r\nabc")
    with pytest.raises(ParseError, match="Bad Content-Length"):
        parse_message(head + b"Content-Length: -3\r\n\r\nabc")
    with pytest.raises(ParseError, match="Multiple Content-Length"):
        parse_message(head + b"Content-Length: 3\r\nl: 3\r\n\r\nabc")


def test_leading_crlf_and_bare_lf_tolerated() -> None:
    msg = parse_message(b"\r\n\r\nOPTIONS sip:a@b SIP/2.0\nSubject: x\n l\nl: 1\n\nab")
    assert msg.headers.get("Subject") == "x l" and msg.body == b"a"


@pytest.mark.parametrize(
    ("data", "reason", "status"),
    [
        (b"", "Empty message", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\n", "Incomplete message", 400),
        (b"OPTIONS sip:a@b SIP/3.0\r\n\r\n", "Unsupported SIP Version", 505),
        (b"OPTIONS  sip:a@b SIP/2.0\r\n\r\n", "Bad Request-Line", 400),
        (b"OPTIONS sip:a@b SIP/2.0 \r\n\r\n", "Bad Request-Line", 400),
        (b"OPTIONS <sip:a@b> SIP/2.0\r\n\r\n", "Bad Request-URI", 400),
        (b"OPTIONS sip:a@b; lr SIP/2.0\r\n\r\n", "Bad Request-URI", 400),
        (b"OPT(IONS sip:a@b SIP/2.0\r\n\r\n", "Bad Method", 400),
        (b"SIP/2.0 2000 OK\r\n\r\n", "Bad Status-Code", 400),
        (b"SIP/2.0 099 Low\r\n\r\n", "Bad Status-Code", 400),
        (b"SIP/1.0 200 OK\r\n\r\n", "Unsupported SIP Version", 505),
        (b"OPTIONS sip:a@b SIP/2.0\r\nNo colon here\r\n\r\n", "Bad header line", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n", "Bad header line", 400),
        (b"OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n", "Bad header folding", 400),
    ],
)
def test_bad_messages_raise_parse_error(data: bytes, reason: str, status: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_message(data)
    assert (info.value.reason, info.value.status) == (reason, status)


def test_accessor_errors_are_parse_errors() -> None:
    base = b"OPTIONS sip:a@b SIP/2.0\r\n%s\r\nContent-Length: 0\r\n\r\n"
    cases = {
        b"CSeq: x OPTIONS": ("cseq", "Bad CSeq"),
        b"CSeq: 2147483648 OPTIONS": ("cseq", "Bad CSeq"),
        b"Max-Forwards: 256": ("max_forwards", "Bad Max-Forwards"),
        b"Expires: 4294967296": ("expires", "Bad Expires"),
        b"Via: SIP/2.0/UDP": ("via", "Bad Via"),
        b"From: <sip:a@b": ("from_", "Unterminated <"),
        b"Content-Type: sdp": ("content_type", "Bad Content-Type"),
        b"Call-ID: a b": ("call_id", "Bad Call-ID"),
    }
    for line, (attr, reason) in cases.items():
        msg = parse_message(base % line)
        with pytest.raises(ParseError) as info:
            getattr(msg, attr)
        assert info.value.reason == reason, line
    assert parse_message(base % b"CSeq: 2147483647 OPTIONS").cseq.seq == 2**31 - 1


def test_make_response_copies_dialog_headers() -> None:
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    ringing = request.make_response(180, to_tag="as8d", headers=[("contact", "<sip:bob@h>")])
    assert (ringing.status, ringing.reason) == (180, "Ringing")
    assert [n for n, _ in ringing.headers] == [
        "Via", "To", "From", "Call-ID", "CSeq", "Record-Route", "Contact"
    ]  # fmt: skip
    assert ringing.to_tag == "as8d"
    assert ringing.from_tag == "1928301774"
    busy = request.make_response(486)
    assert busy.reason == "Busy Here" and busy.to_tag is None
    assert "Record-Route" not in busy.headers
    trying = request.make_response(100, "Trying hard")
    assert trying.reason == "Trying hard" and "Record-Route" not in trying.headers
    assert parse_message(bytes(ringing)).to_tag == "as8d"


def test_make_response_keeps_existing_to_tag() -> None:
    data = INVITE.replace(b'To: "Bob" <sip:bob@biloxi.example.com>', b"To: <sip:b@c>;tag=old")
    request = parse_message(data)
    assert isinstance(request, Request)
    assert request.make_response(200, to_tag="new").to_tag == "old"


def test_construct_messages() -> None:
    request = Request(
        "OPTIONS",
        "sip:bob@example.com",
        [("v", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc"), ("CSeq", "1 OPTIONS")],
        b"hi",
    )
    assert request.uri.host == "example.com"  # type: ignore[union-attr]
    assert bytes(request) == (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc"
        b"\r\nCSeq: 1 OPTIONS\r\nContent-Length: 2\r\n\r\nhi"
    )
    request.uri = SipUri("sip", "carol", None, "[::1]", 5080)
    assert bytes(request).startswith(b"OPTIONS sip:carol@[::1]:5080 SIP/2.0\r\n")
    assert Response(603).reason == "Decline"
    assert Response(299).reason == ""
    assert REASON_PHRASES[481] == "Call/Transaction Does Not Exist"


def test_validate_accepts_a_good_request_and_rejects_bad_ones() -> None:
    validate(parse_message(INVITE))
    for old, new, reason in [
        (b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE", "CSeq method does not match"),
        (b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", b"", "Missing Call-ID"),
        (
            b"Max-Forwards: 70",
            b"Max-Forwards: 70\r\nMax-Forwards: 69",
            "Multiple Max-Forwards values",
        ),
        (b"Max-Forwards: 70", b"Date: Sat, 13 Nov 2010 23:29:00 EST", "Bad Date"),
        (b"bob@biloxi.example.com SIP", b"bob@biloxi.example.com?x=y SIP", "Bad Request-URI"),
        (b"Max-Forwards: 70", b'Warning: 1812 host "x"', "Bad Warning"),
    ]:
        msg = parse_message(INVITE.replace(old, new))
        with pytest.raises(ParseError) as info:
            validate(msg)
        assert info.value.reason == reason
    validate(
        parse_message(INVITE.replace(b"Max-Forwards: 70", b"Date: Sat, 13 Nov 2010 23:29:00 GMT"))
    )


def test_to_dict() -> None:
    data = parse_message(INVITE).to_dict()
    assert data["type"] == "request" and data["method"] == "INVITE"
    assert data["uri"] == "sip:bob@biloxi.example.com"
    assert data["headers"][0] == [
        "Via",
        "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bK776asdhds;rport",
    ]
    assert data["body"] == "v=0\n" and data["body_encoding"] == "utf-8"
    assert data["parsed"] == {
        "call_id": "a84b4c76e66710@pc33.atlanta.example.com",
        "cseq": {"seq": 314159, "method": "INVITE"},
        "via_branch": "z9hG4bK776asdhds",
        "from_tag": "1928301774",
        "to_tag": None,
    }
    binary = Response(200, headers=[("CSeq", "x")], body=b"\xff\x00").to_dict()
    assert binary["body"] == "/wA=" and binary["body_encoding"] == "base64"
    assert binary["status"] == 200 and binary["reason"] == "OK"
    assert "Bad CSeq" in binary["errors"] and binary["parsed"]["cseq"] is None


def test_header_injection_is_refused() -> None:
    headers = Headers()
    with pytest.raises(LocalProtocolError):
        headers.add("Subject", "hi\r\nVia: SIP/2.0/UDP evil")
    with pytest.raises(LocalProtocolError):
        headers.set("Subject", "hi\nthere")
    with pytest.raises(LocalProtocolError):
        headers.add("Bad Name", "x")
    with pytest.raises(LocalProtocolError):
        Headers([("X-A:", "1")])
    request = parse_message(INVITE)
    assert isinstance(request, Request)
    with pytest.raises(LocalProtocolError):
        request.make_response(200, headers=[("Contact", "<sip:a@h>\r\nX: y")])
    assert len(headers) == 0


@pytest.mark.parametrize("odd", [b"Subject: a\rb", b"Subject: a\nb", b"Sub\rject: a"])
def test_lone_cr_or_lf_in_a_line_is_rejected(odd: bytes) -> None:
    with pytest.raises(ParseError, match="Bad line end"):
        parse_message(b"OPTIONS sip:a@b SIP/2.0\r\n" + odd + b"\r\nl: 0\r\n\r\n")


def test_unknown_names_are_learned_and_checked() -> None:
    first = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nX-Never-Seen-Yet : 1\r\nl: 0\r\n\r\n")
    again = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nX-Never-Seen-Yet : 2\r\nl: 0\r\n\r\n")
    assert first.headers.get("x-never-seen-yet") == "1"
    assert list(again.headers)[0] == ("X-Never-Seen-Yet", "2")
    with pytest.raises(ParseError, match="Bad header line"):
        parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nX<Y: 2\r\n\r\n")


def test_constructors_refuse_what_cannot_be_sent() -> None:
    with pytest.raises(LocalProtocolError):
        Request("IN VITE", "sip:a@h")
    with pytest.raises(LocalProtocolError):
        Request("INVITE", "sip:a@h SIP/2.0\r\nX: y")
    with pytest.raises(LocalProtocolError):
        Response(42)
    with pytest.raises(LocalProtocolError):
        Response(200, "OK\r\nX: y")


def test_headers_api_details() -> None:
    headers = Headers(
        [("Subject", ""), ("X-A", "1"), ("x-a", "2"), ("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b")]
    )
    assert headers.get("Subject", "default") == ""
    assert headers.get("x-a") == "1"
    assert headers.getall("X-A") == ["1", "2"]
    assert headers.raw_values("Via") == ["SIP/2.0/UDP a, SIP/2.0/UDP b"]
    assert headers.getall("v") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    assert headers.count("X-A") == 2 and headers.count("Route") == 0
    assert 42 not in headers and "subject" in headers
    headers.set("X-A", "3")
    assert list(headers) == [("Subject", ""), ("X-A", "3"), ("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b")]
    headers.set("Route", "<sip:r;lr>")
    assert list(headers)[-1] == ("Route", "<sip:r;lr>")
    assert headers.get("X-A") == "3"  # the first-value index follows every change
    headers.remove("x-a")
    assert headers.get("X-A") is None and len(headers) == 3
    assert headers == headers.copy() and headers != Headers()


def test_to_dict_survives_undecodable_octets() -> None:
    msg = parse_message(
        b"OPTIONS sip:a@b SIP/2.0\r\nSubject: caf\xe9\r\nCall-ID: x\r\nl: 0\r\n\r\n"
    )
    assert bytes(msg) == (
        b"OPTIONS sip:a@b SIP/2.0\r\nSubject: caf\xe9\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"
    )
    data = msg.to_dict()
    assert data["headers"][0] == ["Subject", "caf\ufffd"]
    assert data["parsed"]["call_id"] == "x"
    assert "Missing CSeq" in data["errors"]
