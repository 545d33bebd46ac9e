"""RFC 4475 section 3.3 (application layer) and 3.4 (RFC 2543 syntax), as a UAS sees them.

The torture messages are read from <repo parent>/shared/conformance/rfc4475
(tests/conftest.py `rfc4475_dir`); the tests skip when the folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.sip.checks import (
    check_register,
    check_request,
    check_response,
    unknown_auth_schemes,
    uri_scheme,
)
from pbx.sip.dialog import Dialog, LocalEndpoint
from pbx.sip.errors import ParseError
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.uri import SipUri, parse_uri

ALLOWED = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "REFER", "UPDATE")


def load(folder: Path, name: str) -> Request | Response:
    return parse_message((folder / f"{name}.dat").read_bytes())


def load_request(folder: Path, name: str) -> Request:
    msg = load(folder, name)
    assert isinstance(msg, Request)
    return msg


def check(req: Request) -> Response | None:
    return check_request(req, allowed_methods=ALLOWED, to_tag="uas")


def test_3_3_1_insuf_missing_headers_400(rfc4475_dir: Path) -> None:
    reply = check(load_request(rfc4475_dir, "insuf"))
    assert reply is not None
    assert (reply.status, reply.reason) == (400, "Missing To, From, Call-ID")
    assert reply.headers.get("CSeq") == "193942 INVITE"
    assert reply.via.branch == "z9hG4bKkdj.insuf"


@pytest.mark.parametrize(
    ("name", "scheme"), [("unkscm", "nobodyknowsthisscheme"), ("novelsc", "soap.beep")]
)
def test_3_3_2_and_3_3_3_request_uri_scheme_416(rfc4475_dir: Path, name: str, scheme: str) -> None:
    req = load_request(rfc4475_dir, name)
    assert uri_scheme(req.uri) == scheme
    reply = check(req)
    assert reply is not None
    assert (reply.status, reply.reason) == (416, "Unsupported URI Scheme")
    assert reply.to_tag == "uas"


def test_3_3_4_unksm2_header_schemes_accepted_but_not_as_aor(rfc4475_dir: Path) -> None:
    req = load_request(rfc4475_dir, "unksm2")
    assert uri_scheme(req.to.uri) == "isbn"
    assert uri_scheme(req.from_.uri) == "http"
    assert uri_scheme(req.contacts[0].uri) == "name"
    assert check(req) is None  # a UAS (or proxy) processes it as any other request
    reply = check_register(req)  # a registrar cannot use isbn: as an address-of-record
    assert reply is not None and reply.status == 400


def test_3_3_5_bext01_require_420_lists_only_require(rfc4475_dir: Path) -> None:
    reply = check(load_request(rfc4475_dir, "bext01"))
    assert reply is not None and reply.status == 420
    assert reply.headers.getall("Unsupported") == [
        "nothingSupportsThis",
        "nothingSupportsThisEither",
    ]


def test_3_3_6_invut_unknown_content_type_415_with_accept(rfc4475_dir: Path) -> None:
    req = load_request(rfc4475_dir, "invut")
    assert req.content_type == "application/unknownformat"
    reply = check(req)
    assert reply is not None and reply.status == 415
    assert reply.headers.get("Accept") == "application/sdp"


def test_3_3_7_regaut01_unknown_auth_scheme_is_reported_not_fatal(rfc4475_dir: Path) -> None:
    req = load_request(rfc4475_dir, "regaut01")
    assert check(req) is None
    assert check_register(req) is None
    assert unknown_auth_schemes(req) == ["NoOneKnowsThisScheme"]  # registrar: 401 + challenge


def test_3_3_8_multi01_repeated_single_value_fields_400(rfc4475_dir: Path) -> None:
    reply = check(load_request(rfc4475_dir, "multi01"))
    assert reply is not None and reply.status == 400
    assert reply.reason.startswith("Multiple ")
    for name in ("From", "To", "Call-ID", "CSeq"):
        assert reply.headers.count(name) == 1
    assert reply.call_id == "multi01.98asdh@192.0.2.1"


def test_3_3_9_mcl01_two_content_lengths_400(rfc4475_dir: Path) -> None:
    try:
        req = load_request(rfc4475_dir, "mcl01")
    except ParseError as exc:  # the parser refuses to frame it: answered with 400 upstream
        assert (exc.status, exc.reason) == (400, "Multiple Content-Length values")
    else:
        reply = check(req)
        assert reply is not None
        assert (reply.status, reply.reason) == (400, "Multiple Content-Length values")


def test_3_3_10_bcast_response_is_dropped(rfc4475_dir: Path) -> None:
    msg = load(rfc4475_dir, "bcast")
    assert isinstance(msg, Response) and msg.status == 200
    assert msg.vias[1].host == "255.255.255.255"
    assert check_response(msg) == "Via names the broadcast or multicast address 255.255.255.255"


def test_3_3_11_zeromf_options_answered_invite_483(rfc4475_dir: Path) -> None:
    req = load_request(rfc4475_dir, "zeromf")
    assert req.max_forwards == 0
    assert check(req) is None  # OPTIONS addressed to us is answered
    data = (rfc4475_dir / "zeromf.dat").read_bytes().replace(b"OPTIONS", b"INVITE")
    invite = parse_message(data)
    assert isinstance(invite, Request)
    reply = check(invite)  # the PBX would relay it to another leg: stop like a proxy
    assert reply is not None and reply.status == 483
    # an endpoint processes it "as if Max-Forwards were still positive"
    assert check_request(invite, allowed_methods=ALLOWED, forwards=False) is None


def test_3_3_12_cparam01_contact_param_is_not_a_uri_param(rfc4475_dir: Path) -> None:
    req = load_request(rfc4475_dir, "cparam01")
    contact = req.contacts[0]
    assert contact.params == {"unknownparam": None}
    assert isinstance(contact.uri, SipUri)
    assert "unknownparam" not in contact.uri.params
    assert contact.uri.user == "+19725552222"
    assert check(req) is None and check_register(req) is None


def test_3_3_13_cparam02_uri_param_stays_in_the_uri(rfc4475_dir: Path) -> None:
    req = load_request(rfc4475_dir, "cparam02")
    contact = req.contacts[0]
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.params == {"unknownparam": None}
    assert contact.params == {}
    assert str(contact.uri) == "sip:+19725552222@gw1.example.net;unknownparam"
    assert check(req) is None and check_register(req) is None


def test_3_3_14_regescrt_escaped_header_in_contact(rfc4475_dir: Path) -> None:
    req = load_request(rfc4475_dir, "regescrt")
    uri = req.contacts[0].uri
    assert isinstance(uri, SipUri)
    assert uri.headers == {"Route": "<sip:sip.example.com>"}
    text = str(uri)
    assert "<" not in text and "%3C" in text.upper()  # re-escaped on the way out
    assert parse_uri(text) == uri
    assert check(req) is None and check_register(req) is None


def test_3_3_15_sdp01_accept_without_sdp_406(rfc4475_dir: Path) -> None:
    reply = check(load_request(rfc4475_dir, "sdp01"))
    assert reply is not None
    assert (reply.status, reply.reason) == (406, "Not Acceptable")


def test_3_4_1_inv2543_is_processed_and_makes_a_dialog(rfc4475_dir: Path) -> None:
    req = load_request(rfc4475_dir, "inv2543")
    assert check(req) is None
    assert req.via.branch is None and req.from_tag is None and req.max_forwards is None
    assert req.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    local = LocalEndpoint(contact="<sip:UserB@192.0.2.20>", sent_by="192.0.2.20")
    dialog = Dialog.uas(req, req.make_response(200, to_tag="b1"), local)
    assert dialog.id.remote_tag is None
    bye = dialog.bye()
    # Record-Route without ;lr: strict routing (RFC 3261 12.2.1.1)
    assert str(bye.uri) == "sip:UserB@example.com;maddr=ss1.example.com"
    assert bye.headers.getall("Route") == ["<sip:+13035551111@ift.client.example.net;user=phone>"]
    assert bye.to_tag is None and bye.from_tag == "b1"
