"""RFC 4475 torture messages against the message layer.

3.1.1 and 3.4 must parse, with the tricky values read back exactly; 3.1.2 must
raise one ParseError whose reason names the problem, either from parse_message
(framing, start line, Content-Length) or from validate() (header values); 3.2 and
3.3 belong to the transaction and application layers: they must parse, except
mcl01, which cannot be framed (RFC 4475 3.3.14, RFC 3261 18.3).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.headers import CSeq
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.uri import AbsoluteUri, SipUri, TelUri
from pbx.sip.validate import validate
from tests.conftest import rfc4475_message


def load(name: str) -> Request | Response:
    msg = parse_message(rfc4475_message(name))
    validate(msg)
    return msg


VALID = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01", "unreason", "noreason", "inv2543",
]  # fmt: skip


@pytest.mark.parametrize("name", VALID)
def test_valid_messages_parse_validate_and_round_trip(name: str) -> None:
    msg = load(name)
    data = bytes(msg)
    again = parse_message(data)
    validate(again)
    assert bytes(again) == data
    assert list(again.headers) == [(n, v) for n, v in msg.headers if n != "Content-Length"] + [
        ("Content-Length", str(len(msg.body)))
    ]
    assert again.body == msg.body


def test_wsinv_whitespace_folding_and_compact_forms() -> None:
    msg = load("wsinv")
    assert isinstance(msg, Request)
    assert msg.uri == SipUri(
        "sip", "vivekg", None, "chair-dnrc.example.com", params={"unknownparam": None}
    )
    assert msg.to_tag == "1918181833n" and msg.to.uri == SipUri(
        "sip", "vivekg", None, "chair-dnrc.example.com"
    )
    assert msg.from_.display == 'J Rosenberg \\"'
    assert msg.from_tag == "98asjd8"
    assert msg.max_forwards == 68
    assert msg.cseq == CSeq(9, "INVITE")
    assert msg.headers.get("Subject") == ""
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    (contact,) = msg.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert contact.q == 0.33
    assert msg.routes[0].uri.params == {  # type: ignore[union-attr]
        "lr": None, "unknownwith": "value", "unknown-no-value": None
    }  # fmt: skip
    assert msg.content_type == "application/sdp" and len(msg.body) == 150


def test_intmeth_unusual_characters() -> None:
    msg = load("intmeth")
    assert isinstance(msg, Request)
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.cseq.method == msg.method
    uri = msg.uri
    assert isinstance(uri, SipUri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_tag == "_token~1'+`*%!-."
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.via.branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_esc01_escapes_are_decoded() -> None:
    msg = load("esc01")
    assert isinstance(msg, Request)
    assert msg.uri.user == "sips:user@example.com"  # type: ignore[union-attr]
    assert str(msg.uri) == "sip:sips%3Auser%40example.com@example.net"
    assert msg.to.uri.user == "user"  # type: ignore[union-attr]
    assert msg.from_.uri.user == "I have spaces"  # type: ignore[union-attr]
    contact = msg.contacts[0].uri
    assert isinstance(contact, SipUri)
    assert contact.user == "caller"
    assert contact.params == {"lr": None, "name": "value%41"}
    assert contact == SipUri(
        "sip", "caller", None, "host5.example.net", params={"lr": None, "name": "value%41"}
    )


def test_escnull_keeps_nul_octets() -> None:
    msg = load("escnull")
    assert msg.to.uri.user == "null-\x00-null"  # type: ignore[union-attr]
    assert [c.uri.user for c in msg.contacts] == ["\x00", "\x00\x00"]  # type: ignore[union-attr]
    assert str(msg.contacts[1].uri) == "sip:%00%00@host5.example.com"


def test_esc02_percent_that_is_not_an_escape() -> None:
    msg = load("esc02")
    assert isinstance(msg, Request)
    assert msg.method == "RE%47IST%45R"  # not REGISTER: methods are not unescaped
    assert msg.to.display == "%Z%45"
    assert msg.via.branch == "z9hG4bK209%fzsnel234"
    assert [str(c.uri) for c in msg.contacts] == [
        "sip:alias1@host1.example.com", "sip:alias3@host3.example.com"
    ]  # fmt: skip
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_display_without_space() -> None:
    assert load("lwsdisp").from_.display == "caller"


def test_longreq_long_values() -> None:
    msg = load("longreq")
    assert len(msg.vias) == 34
    assert msg.vias[0].host == "sip33.example.com"
    assert msg.vias[-1].received == "192.0.2.5"
    assert len(msg.vias[-1].branch or "") > 100
    assert msg.to.display is not None and "extremeextreme" in msg.to.display
    assert msg.to.uri.port == 6000  # type: ignore[union-attr]
    assert len(msg.call_id) > 100
    assert len(msg.body) == 150


def test_dblreq_trailing_octets_are_ignored() -> None:
    data = rfc4475_message("dblreq")
    msg = load("dblreq")
    assert msg.body == b""
    assert msg.cseq == CSeq(8, "REGISTER")
    assert b"INVITE sip:joe@example.com SIP/2.0" in data
    assert b"INVITE" not in bytes(msg)


def test_semiuri_semicolon_in_user() -> None:
    msg = load("semiuri")
    uri = msg.uri  # type: ignore[union-attr]
    assert isinstance(uri, SipUri)
    assert (uri.user, uri.host, uri.params) == ("user;par=u@example.net", "example.com", {})
    assert msg.headers.getall("Accept")[-1] == "message/sipfrag"
    assert len(msg.headers.getall("Accept")) == 6


def test_transports_each_via() -> None:
    msg = load("transports")
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert msg.vias[2].sent_by == ("t3.example.com", 5061)
    assert msg.vias[3].sent_by == ("t4.example.com", 5060)


def test_mpart01_body_exact() -> None:
    data = rfc4475_message("mpart01")
    msg = load("mpart01")
    assert len(msg.body) == 553
    assert msg.body == data[data.index(b"\r\n\r\n") + 4 :][:553]
    assert msg.content_type == "multipart/mixed"
    assert b"\x00" in msg.body or not msg.body.isascii()  # binary CMS part survives intact


def test_unreason_and_noreason() -> None:
    unreason = load("unreason")
    assert isinstance(unreason, Response)
    assert unreason.status == 200
    assert unreason.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    noreason = load("noreason")
    assert isinstance(noreason, Response)
    assert (noreason.status, noreason.reason) == (100, "")


def test_inv2543_old_syntax() -> None:
    msg = load("inv2543")
    assert msg.via.branch is None
    assert msg.max_forwards is None
    assert msg.from_.uri.params == {"user": "phone"}  # type: ignore[union-attr]
    # RFC 3261 20.10: after a bare addr-spec, ;user=phone is a header parameter
    assert msg.to.params == {"user": "phone"} and msg.to.uri.params == {}  # type: ignore[union-attr]
    assert msg.body.startswith(b"v=0")


INVALID = [
    ("badinv01", "validate", "Bad Via", 400),
    ("clerr", "parse", "Bad Content-Length", 400),
    ("ncl", "parse", "Bad Content-Length", 400),
    ("scalar02", "validate", "Bad CSeq", 400),
    ("scalarlg", "validate", "Bad CSeq", 400),
    ("quotbal", "validate", "Unterminated quoted string", 400),
    ("ltgtruri", "parse", "Bad Request-URI", 400),
    ("lwsruri", "parse", "Bad Request-URI", 400),
    ("lwsstart", "parse", "Bad Request-Line", 400),
    ("trws", "parse", "Bad Request-Line", 400),
    ("escruri", "validate", "Bad Request-URI", 400),
    ("baddate", "validate", "Bad Date", 400),
    ("regbadct", "validate", "Bad addr-spec", 400),
    ("badaspec", "validate", "Bad addr-spec", 400),
    ("baddn", "validate", "Bad display name", 400),
    ("badvers", "parse", "Unsupported SIP Version", 505),
    ("mismatch01", "validate", "CSeq method does not match", 400),
    ("mismatch02", "validate", "CSeq method does not match", 400),
    ("bigcode", "parse", "Bad Status-Code", 400),
]


@pytest.mark.parametrize(("name", "stage", "reason", "status"), INVALID)
def test_invalid_messages_raise_one_typed_error(
    name: str, stage: str, reason: str, status: int
) -> None:
    data = rfc4475_message(name)
    if stage == "parse":
        with pytest.raises(ParseError) as info:
            parse_message(data)
    else:
        msg = parse_message(data)  # lazy: header values are not read yet
        with pytest.raises(ParseError) as info:
            validate(msg)
    assert (info.value.reason, info.value.status) == (reason, status)


def test_badinv01_contact_separators() -> None:
    msg = parse_message(rfc4475_message("badinv01"))
    with pytest.raises(ParseError, match="Bad header parameter"):
        _ = msg.contacts


def test_scalar_fields_individually() -> None:
    msg = parse_message(rfc4475_message("scalar02"))
    with pytest.raises(ParseError, match="Bad Max-Forwards"):
        _ = msg.max_forwards
    with pytest.raises(ParseError, match="Bad Expires"):
        _ = msg.expires
    with pytest.raises(ParseError, match="Bad Contact expires"):
        _ = msg.contacts[0].expires
    response = parse_message(rfc4475_message("scalarlg"))
    assert isinstance(response, Response) and response.status == 503
    with pytest.raises(ParseError, match="Bad CSeq"):
        _ = response.cseq


# 3.2 and 3.3: other layers decide; the message layer must parse them.
LAYER_ABOVE = [
    "badbranch", "insuf", "unkscm", "novelsc", "unksm2", "bext01", "invut", "regaut01",
    "multi01", "bcast", "zeromf", "cparam01", "cparam02", "regescrt", "sdp01",
]  # fmt: skip


@pytest.mark.parametrize("name", LAYER_ABOVE)
def test_transaction_and_application_messages_parse(name: str) -> None:
    msg = parse_message(rfc4475_message(name))
    assert parse_message(bytes(msg)).headers == parse_message(bytes(msg)).headers
    if name not in ("insuf", "multi01"):
        validate(msg)


def test_layer_above_details() -> None:
    assert load("badbranch").via.branch == "z9hG4bK"
    assert isinstance(load("unkscm").uri, AbsoluteUri)  # type: ignore[union-attr]
    novelsc = load("novelsc")
    assert isinstance(novelsc, Request)
    assert novelsc.uri == AbsoluteUri("soap.beep", "//192.0.2.103:3002")
    unksm2 = load("unksm2")
    assert unksm2.to.uri == AbsoluteUri("isbn", "2983792873")
    assert unksm2.from_.uri == AbsoluteUri("http", "//www.example.com")
    assert load("zeromf").max_forwards == 0
    assert load("bcast").vias[1].host == "255.255.255.255"
    cparam01 = load("cparam01").contacts[0]
    assert cparam01.params == {"unknownparam": None} and cparam01.uri.params == {}  # type: ignore[union-attr]
    cparam02 = load("cparam02").contacts[0]
    assert cparam02.params == {} and cparam02.uri.params == {"unknownparam": None}  # type: ignore[union-attr]
    regescrt = load("regescrt").contacts[0].uri
    assert isinstance(regescrt, SipUri)
    assert regescrt.headers == {"Route": "<sip:sip.example.com>"}
    assert isinstance(parse_message(b"OPTIONS tel:+1-201-555-0123 SIP/2.0\r\n\r\n").uri, TelUri)  # type: ignore[union-attr]


def test_insuf_and_multi01_fail_validation() -> None:
    with pytest.raises(ParseError, match="Missing From"):
        load("insuf")
    with pytest.raises(ParseError, match="Multiple From values"):
        load("multi01")


def test_mcl01_cannot_be_framed() -> None:
    with pytest.raises(ParseError) as info:
        parse_message(rfc4475_message("mcl01"))
    assert info.value.reason == "Multiple Content-Length values"


def test_every_file_is_covered(rfc4475_dir: Path) -> None:
    names = {p.stem for p in rfc4475_dir.glob("*.dat")}
    covered = set(VALID) | {n for n, *_ in INVALID} | set(LAYER_ABOVE) | {"mcl01"}
    assert len(names) == 49
    assert names == covered
