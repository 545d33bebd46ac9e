"""UAS request checks of RFC 3261 8.2 on hand-built requests."""

from __future__ import annotations

import pytest

from pbx.sip.checks import (
    check_register,
    check_request,
    check_response,
    unknown_auth_schemes,
)
from pbx.sip.message import Request, Response

ALLOWED = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER")
SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"


def request(
    method: str = "INVITE",
    uri: str = "sip:100@pbx.example.com",
    extra: tuple[tuple[str, str], ...] = (),
    *,
    body: bytes = b"",
    drop: tuple[str, ...] = (),
    cseq_method: str | None = None,
) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcheck1"),
        ("Max-Forwards", "70"),
        ("From", "<sip:200@pbx.example.com>;tag=f1"),
        ("To", "<sip:100@pbx.example.com>"),
        ("Call-ID", "check-1@192.0.2.1"),
        ("CSeq", f"1 {cseq_method or method}"),
        ("Contact", "<sip:200@192.0.2.1:5060>"),
        *extra,
    ]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    return Request(method, uri, [(n, v) for n, v in headers if n not in drop], body)


def check(req: Request, **kwargs: object) -> Response | None:
    kwargs.setdefault("allowed_methods", ALLOWED)
    kwargs.setdefault("to_tag", "uas1")
    return check_request(req, **kwargs)  # type: ignore[arg-type]


def test_good_request_passes() -> None:
    assert check(request(body=SDP)) is None
    assert check(request("OPTIONS")) is None


@pytest.mark.parametrize("name", ["Via", "To", "From", "Call-ID", "CSeq"])
def test_missing_mandatory_header_is_400_naming_it(name: str) -> None:
    reply = check(request(drop=(name,)))
    assert reply is not None
    assert (reply.status, reply.reason) == (400, f"Missing {name}")


def test_several_missing_headers_are_all_named() -> None:
    reply = check(request(drop=("Call-ID", "To")))
    assert reply is not None and reply.reason == "Missing To, Call-ID"
    assert reply.headers.get("From") == "<sip:200@pbx.example.com>;tag=f1"
    assert reply.headers.get("Via") == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcheck1"


def test_missing_max_forwards_is_tolerated_for_rfc2543_peers() -> None:
    assert check(request(drop=("Max-Forwards",))) is None


def test_error_response_carries_to_tag_and_copies() -> None:
    reply = check(request("SUBSCRIBE"))
    assert reply is not None
    assert reply.to_tag == "uas1"
    assert reply.call_id == "check-1@192.0.2.1"
    assert str(reply.cseq) == "1 SUBSCRIBE"
    tagged = request("SUBSCRIBE", extra=())
    tagged.headers.set("To", "<sip:100@pbx.example.com>;tag=existing")
    again = check(tagged)
    assert again is not None and again.to_tag == "existing"


def test_random_to_tag_when_none_given() -> None:
    reply = check_request(request("FOO"), allowed_methods=ALLOWED)
    assert reply is not None and reply.to_tag is not None and len(reply.to_tag) >= 8


def test_parser_validation_becomes_400() -> None:
    reply = check(request(cseq_method="BYE"))
    assert reply is not None and reply.status == 400
    assert reply.reason == "CSeq method does not match"
    bad_cseq = request()
    bad_cseq.headers.set("CSeq", "one INVITE")
    reply = check(bad_cseq)
    assert reply is not None and reply.status == 400 and "CSeq" in reply.reason


def test_repeated_single_value_field_is_400() -> None:
    reply = check(request(extra=(("Call-ID", "other@192.0.2.9"),)))
    assert reply is not None and reply.status == 400
    assert reply.reason == "Multiple Call-ID values"
    assert reply.headers.count("Call-ID") == 1


def test_repeated_content_length_is_400() -> None:
    reply = check(request(extra=(("Content-Length", "0"), ("Content-Length", "5"))))
    assert reply is not None
    assert (reply.status, reply.reason) == (400, "Multiple Content-Length values")


def test_invite_with_two_contacts_is_400() -> None:
    reply = check(request(extra=(("Contact", "<sip:x@192.0.2.7>"),)))
    assert reply is not None
    assert (reply.status, reply.reason) == (400, "Multiple Contact values")
    assert check(request("REGISTER", extra=(("Contact", "<sip:x@192.0.2.7>"),))) is None


def test_known_but_disallowed_method_is_405_with_allow() -> None:
    reply = check(request("SUBSCRIBE"))
    assert reply is not None and reply.status == 405
    assert reply.headers.get("Allow") == "ACK, BYE, CANCEL, INVITE, OPTIONS, REGISTER"


def test_unknown_method_is_501_with_allow() -> None:
    reply = check(request("FOO"))
    assert reply is not None and reply.status == 501
    assert "INVITE" in (reply.headers.get("Allow") or "")


@pytest.mark.parametrize(
    "uri", ["sip:100@pbx.example.com", "sips:100@pbx.example.com", "tel:+15551234567"]
)
def test_supported_request_uri_schemes(uri: str) -> None:
    assert check(request(uri=uri)) is None


@pytest.mark.parametrize("uri", ["mailto:bob@example.com", "http://example.com/x"])
def test_unsupported_request_uri_scheme_is_416(uri: str) -> None:
    reply = check(request(uri=uri))
    assert reply is not None
    assert (reply.status, reply.reason) == (416, "Unsupported URI Scheme")


def test_local_schemes_are_configurable() -> None:
    reply = check(request(uri="tel:+15551234567"), local_schemes=("sip",))
    assert reply is not None and reply.status == 416


def test_max_forwards_zero() -> None:
    def hops(method: str, value: str) -> Request:
        req = request(method)
        req.headers.set("Max-Forwards", value)
        return req

    reply = check(hops("INVITE", "0"))
    assert reply is not None and (reply.status, reply.reason) == (483, "Too Many Hops")
    assert check(hops("OPTIONS", "0")) is None
    assert check(hops("REGISTER", "0")) is None
    assert check(hops("INVITE", "1")) is None
    assert check(hops("INVITE", "0"), forwards=False) is None  # ends here: processed


def test_require_with_unsupported_option_is_420_listing_only_unknown_ones() -> None:
    req = request(extra=(("Require", "100rel, foo"), ("Require", "Timer")))
    reply = check(req, supported_extensions=("100rel", "timer"))
    assert reply is not None and reply.status == 420
    assert reply.headers.getall("Unsupported") == ["foo"]
    assert check(req, supported_extensions=("100rel", "timer", "foo")) is None


def test_require_ignored_for_ack_and_cancel_and_proxy_require_ignored() -> None:
    assert check(request("ACK", extra=(("Require", "foo"),))) is None
    assert check(request("CANCEL", extra=(("Require", "foo"),))) is None
    assert check(request(extra=(("Proxy-Require", "foo"),))) is None


def test_unknown_content_type_is_415_with_accept() -> None:
    req = request(body=b"hello")
    req.headers.set("Content-Type", "text/plain")
    reply = check(req, accepted_content_types=("application/sdp", "multipart/mixed"))
    assert reply is not None and reply.status == 415
    assert reply.headers.get("Accept") == "application/sdp, multipart/mixed"


def test_optional_body_may_be_ignored() -> None:
    req = request(body=b"hello", extra=(("Content-Disposition", "render; handling=optional"),))
    req.headers.set("Content-Type", "text/plain")
    assert check(req) is None


def test_unknown_content_encoding_is_415_with_accept_encoding() -> None:
    reply = check(request(body=SDP, extra=(("Content-Encoding", "gzip"),)))
    assert reply is not None and reply.status == 415
    assert reply.headers.get("Accept-Encoding") == "identity"


def test_body_without_content_type_is_415() -> None:
    req = request(body=b"raw")
    req.headers.remove("Content-Type")
    reply = check(req)
    assert reply is not None and reply.status == 415


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/sdp", None),
        ("application/*", None),
        ("*/*", None),
        ("text/html, application/sdp;q=0.5", None),
        ("application/sdp;q=0", 406),
        ("text/nobodyKnowsThis", 406),
        ("", 406),
    ],
)
def test_invite_accept_must_admit_sdp(accept: str, status: int | None) -> None:
    reply = check(request(body=SDP, extra=(("Accept", accept),)))
    assert (reply.status if reply else None) == status


def test_accept_only_matters_for_invite() -> None:
    assert check(request("OPTIONS", extra=(("Accept", "text/x"),))) is None


def test_checks_run_in_rfc_order_method_before_scheme() -> None:
    reply = check(request("FOO", uri="mailto:x@example.com"))
    assert reply is not None and reply.status == 501


# ---- REGISTER ---------------------------------------------------------------------------


def register(
    to: str = "<sip:100@pbx.example.com>",
    contacts: tuple[str, ...] = (),
    expires: str | None = None,
) -> Request:
    req = request("REGISTER", uri="sip:pbx.example.com", drop=("Contact",))
    req.headers.set("To", to)
    for contact in contacts:
        req.headers.add("Contact", contact)
    if expires is not None:
        req.headers.add("Expires", expires)
    return req


def test_register_checks() -> None:
    assert check_register(register(contacts=("<sip:100@192.0.2.1>;expires=60",))) is None
    assert check_register(register(contacts=("<mailto:x@example.com>",))) is None
    reply = check_register(register(to="<tel:+15551234567>"), to_tag="r1")
    assert reply is not None and reply.status == 400
    assert reply.reason == "Address-of-record must be a SIP URI"
    assert reply.to_tag == "r1"
    assert check_register(register(contacts=("*",), expires="0")) is None
    for bad in (register(contacts=("*",)), register(contacts=("*", "<sip:a@b>"), expires="0")):
        wildcard = check_register(bad)
        assert wildcard is not None and wildcard.reason == "Invalid wildcard Contact"
    bad_expiry = check_register(register(contacts=("<sip:a@b>;expires=soon",)))
    assert bad_expiry is not None and bad_expiry.status == 400


# ---- responses and credentials ------------------------------------------------------------


def response(*vias: str, cseq: str = "1 INVITE") -> Response:
    headers = [("Via", via) for via in vias] + [
        ("From", "<sip:200@pbx.example.com>;tag=f1"),
        ("To", "<sip:100@pbx.example.com>;tag=t1"),
        ("Call-ID", "resp-1"),
        ("CSeq", cseq),
    ]
    return Response(200, None, headers)


def test_check_response() -> None:
    assert check_response(response("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa")) is None
    two = check_response(
        response("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa", "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKb")
    )
    assert two == "2 Via values in a response to a UA"
    multicast = check_response(response("SIP/2.0/UDP 224.0.1.75;branch=z9hG4bKa"))
    assert multicast == "Via names the broadcast or multicast address 224.0.1.75"
    broken = check_response(response("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKa", cseq="x"))
    assert broken is not None and broken.startswith("malformed response: ")


def test_unknown_auth_schemes() -> None:
    req = request(
        "REGISTER",
        extra=(
            (
                "Authorization",
                'Digest username="100", realm="pbx", nonce="n", uri="sip:pbx", response="00"',
            ),
            ("Authorization", "Basic dXNlcjpwYXNz"),
            ("Proxy-Authorization", "Bearer abc"),
        ),
    )
    assert unknown_auth_schemes(req) == ["Basic", "Bearer"]
    assert unknown_auth_schemes(req, known=("digest", "basic", "bearer")) == []
    assert unknown_auth_schemes(request("REGISTER")) == []
