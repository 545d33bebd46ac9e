"""The transaction key's shortcuts (top Via params, CSeq, From tag) agree with the full
grammar (RFC 3261 20.16, 20.42, 19.3) on generated and tricky values."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip.errors import ParseError
from pbx.sip.headers import _CSEQ, MAX_CSEQ, CSeq, Via, _plain_params
from pbx.sip.message import parse_message
from pbx.sip.uri import PLAIN_PARAM, params_dict, params_of, tag_of

TOKEN_ALPHABET = "abcXYZ019-.!%*_+`'~"
tokens = st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=6)
names = st.sampled_from(["tag", "TAG", "Tag", "branch", "rport", "lr", "x"]) | tokens


def _outcome(fn, text):  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(text))
    except ParseError as exc:
        return ("error", exc.reason)


# --- Via parameters -----------------------------------------------------------------------


@st.composite
def plain_param_text(draw: st.DrawFn) -> str:
    params = draw(st.lists(st.tuples(names, st.none() | tokens), max_size=5))
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


@settings(max_examples=800, deadline=None)
@given(plain_param_text())
def test_plain_params_agree_with_findall(text: str) -> None:
    expected = params_dict(PLAIN_PARAM.findall(text)) if text else {}
    got = _plain_params(text) if text else {}
    assert got == expected
    assert list(got) == list(expected)  # same order too: it prints back the same


def test_plain_params_first_of_repeated_name_wins() -> None:
    assert _plain_params(";Branch=z9hG4bK1;rport;branch=z9hG4bK2;RPORT=5") == {
        "branch": "z9hG4bK1",
        "rport": None,
    }


def test_via_fast_build_is_the_same_frozen_value() -> None:
    via = Via.parse("SIP/2.0/udp Host.Example:5070;branch=z9hG4bK77;rport;received=10.0.0.1")
    assert via == Via("SIP/2.0", "UDP", "host.example", 5070,
                      {"branch": "z9hG4bK77", "rport": None, "received": "10.0.0.1"})  # fmt: skip
    assert via.branch == "z9hG4bK77" and via.rport is True and via.sent_by == ("host.example", 5070)
    with pytest.raises(dataclasses.FrozenInstanceError):
        via.host = "other"  # type: ignore[misc]
    assert Via.parse(str(via)) == via


@pytest.mark.parametrize(
    "text",
    ["SIP/2.0/UDP h:65536;branch=z9hG4bK1", "SIP/2.0/UDP h;;branch=x", "SIP/2.0/UDP h;=x"],
)
def test_via_fast_path_still_refuses_bad_values(text: str) -> None:
    with pytest.raises(ParseError):
        Via.parse(text)


# --- CSeq -----------------------------------------------------------------------------------


def _full_cseq(text: str) -> CSeq:
    match = _CSEQ.fullmatch(text)
    if match is None:
        raise ParseError("Bad CSeq")
    digits, method = match.groups()
    if len(digits) > 10 or int(digits) > MAX_CSEQ:
        raise ParseError("Bad CSeq")
    return CSeq(int(digits), method)


methods = st.sampled_from(["INVITE", "REGISTER", "BYE", "invite", "FOO", "ACK", "IN VITE"])
numbers = st.integers(0, 2**32).map(str) | st.sampled_from(
    ["", "007", "2147483647", "2147483648", "99999999999", "١٢", "²", "-1"]
)
spaces = st.sampled_from([" ", "  ", "\t", "", " \t "])


@settings(max_examples=1000, deadline=None)
@given(spaces, numbers, spaces, methods, spaces)
def test_cseq_shortcut_agrees_with_grammar(lead: str, num: str, gap: str, method: str,
                                           trail: str) -> None:  # fmt: skip
    for text in (f"{num} {method}", f"{lead}{num}{gap}{method}{trail}"):
        assert _outcome(CSeq.parse, text) == _outcome(_full_cseq, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2 REGISTER", CSeq(2, "REGISTER")), ("007 INVITE", CSeq(7, "INVITE")),
     ("2147483647 BYE", CSeq(2147483647, "BYE")), ("4 FOO", CSeq(4, "FOO"))],
)  # fmt: skip
def test_cseq_values(text: str, expected: CSeq) -> None:
    assert CSeq.parse(text) == expected


@pytest.mark.parametrize("text", ["2147483648 INVITE", "²  INVITE", "² INVITE", "1 INVITE x"])
def test_cseq_refusals(text: str) -> None:
    with pytest.raises(ParseError):
        CSeq.parse(text)


# --- From/To tag ----------------------------------------------------------------------------

displays = st.sampled_from(["", '"Front Desk" ', '"A" ', "Bob ", '"q\\"x" ', '"a;tag=z" ', "<"])
addresses = st.sampled_from(
    ["<sip:201@pbx.example.com>", "<sip:a@b;tag=inuri>", "sip:a@b", "<sip:a@b>>", "<sip:a b>",
     "sip:a@b?x=1", "<tel:+1>", ""]
)  # fmt: skip
tails = st.lists(
    st.tuples(names, st.none() | tokens | st.just('"q"') | st.just("")), max_size=4
).map(lambda ps: "".join(f";{n}" if v is None else f";{n}={v}" for n, v in ps))
spacing = st.sampled_from(["", " ", ";", ","])


@settings(max_examples=1500, deadline=None)
@given(displays, addresses, tails, spacing)
def test_tag_of_agrees_with_params_of(display: str, address: str, tail: str, extra: str) -> None:
    for text in (f"{display}{address}{tail}", f"{display}{address}{extra}{tail}"):
        assert _outcome(tag_of, text) == _outcome(lambda t: params_of(t).get("tag"), text)


@pytest.mark.parametrize(
    ("text", "tag"),
    [('"Front Desk" <sip:201@pbx.example.com>;tag=6b2a9d1c', "6b2a9d1c"),
     ("<sip:a@b;tag=inuri>", None), ("<sip:a@b;tag=inuri>;tag=out", "out"),
     ("sip:a@b;tag=x;tag=y", "x"), ("<sip:a@b>;TAG=up;tag=low", "up"),
     ('"x;tag=no" <sip:a@b>', None), ('"x" <sip:a@b> ; tag = spaced', "spaced")],
)  # fmt: skip
def test_tag_of_values(text: str, tag: str | None) -> None:
    assert tag_of(text) == tag


# --- the key as read from a message ---------------------------------------------------------

MESSAGE = (
    "REGISTER sip:pbx.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 192.168.1.34:5060;branch=z9hG4bK-77;rport\r\n"
    'From: "Front Desk" <sip:201@pbx.example.com>;tag=6b2a9d1c\r\n'
    "To: <sip:201@pbx.example.com>\r\n"
    "Call-ID: abc@host\r\n"
    "CSeq: 2 REGISTER\r\n"
    "{extra}"
    "Content-Length: 0\r\n\r\n"
)


def test_message_key_fields() -> None:
    msg = parse_message(MESSAGE.format(extra="").encode())
    assert (msg.via.branch, msg.cseq, msg.call_id, msg.from_tag) == (
        "z9hG4bK-77", CSeq(2, "REGISTER"), "abc@host", "6b2a9d1c"
    )  # fmt: skip


@pytest.mark.parametrize("extra", ["Content-Length: 0\r\n", "l: 0\r\n"])
def test_two_content_lengths_still_refused(extra: str) -> None:
    with pytest.raises(ParseError, match="Multiple Content-Length"):
        parse_message(MESSAGE.format(extra=extra).encode())


@pytest.mark.parametrize("missing", ["Via", "CSeq", "Call-ID"])
def test_missing_key_header_names_it(missing: str) -> None:
    text = "".join(
        line + "\r\n"
        for line in MESSAGE.format(extra="").split("\r\n")[:-2]
        if not line.startswith(missing + ":")
    )
    msg = parse_message((text + "\r\n").encode())
    with pytest.raises(ParseError, match=f"Missing {missing}"):
        _ = {"Via": lambda: msg.via, "CSeq": lambda: msg.cseq, "Call-ID": lambda: msg.call_id}[
            missing
        ]()
