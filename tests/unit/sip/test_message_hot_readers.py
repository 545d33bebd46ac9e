"""The transaction-key readers of a parsed message (msg.cseq, msg.call_id, msg.from_tag,
msg.via: RFC 3261 17.2.3, 20.8, 20.16, 19.3, 20.42) take fast paths for the usual
spellings; on generated values they agree with the header parsers: same value or same
error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip.errors import ParseError
from pbx.sip.headers import CSeq, parse_call_id, split_header_values
from pbx.sip.headers import Via as ViaType
from pbx.sip.message import parse_message
from pbx.sip.uri import params_of

VIA = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1"


def _message(**values: str) -> bytes:
    head = {"Via": VIA, "From": "<sip:a@b>;tag=1", "To": "<sip:c@d>", "Call-ID": "c1",
            "CSeq": "1 OPTIONS"} | values  # fmt: skip
    lines = ["OPTIONS sip:x@y SIP/2.0", *(f"{n}: {v}" for n, v in head.items())]
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except ParseError as exc:
        return ("error", exc.reason)


# Header values as they survive a parse: printable ASCII without leading/trailing space.
def _value(alphabet: str, max_size: int = 16) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=1, max_size=max_size).map(str.strip).filter(bool)


digits = st.text(alphabet="0123456789", min_size=1, max_size=12)
methods = st.sampled_from(["INVITE", "REGISTER", "ACK", "BYE", "FOO", "invite", "MESSAGE"])
cseq_values = (
    st.builds(lambda d, m: f"{d} {m}", digits, methods)
    | st.builds(lambda d, m: f"{d}  {m}", digits, methods)
    | st.builds(lambda d, m: f"{d}\t{m}", digits, methods)
    | _value("0123456789 ABCINVTE\t-")
)


@settings(max_examples=600, deadline=None)
@given(cseq_values)
def test_cseq_reader_agrees_with_cseq_parse(value: str) -> None:
    msg = parse_message(_message(CSeq=value))
    assert _outcome(lambda: msg.cseq) == _outcome(lambda: CSeq.parse(value))
    if _outcome(lambda: msg.cseq)[0] == "ok":
        assert type(msg.cseq) is CSeq
        assert msg.cseq == CSeq(msg.cseq.seq, msg.cseq.method)


@settings(max_examples=400, deadline=None)
@given(_value("abc123@.-_ \t!%", 20))
def test_call_id_reader_agrees_with_parse_call_id(value: str) -> None:
    msg = parse_message(_message(**{"Call-ID": value}))
    assert _outcome(lambda: msg.call_id) == _outcome(lambda: parse_call_id(value))


tags = st.text(alphabet="abc019-.!%*_+`'~", min_size=0, max_size=6)
from_values = (
    st.builds(lambda t: f"<sip:a@b>;tag={t}", tags)
    | st.builds(lambda t: f'"A;tag=x" <sip:a@b>;tag={t}', tags)
    | st.builds(lambda t: f"sip:a@b;tag={t};lr", tags)
    | st.builds(lambda t: f"<sip:a@b;tag=u>;x=1;TAG={t}", tags)
    | _value('<>sip:ab@;=tag"x ', 24)
)


@settings(max_examples=600, deadline=None)
@given(from_values)
def test_from_tag_reader_agrees_with_params_of(value: str) -> None:
    msg = parse_message(_message(From=value))
    assert _outcome(lambda: msg.from_tag) == _outcome(lambda: params_of(value).get("tag"))


via_values = st.builds(
    lambda t, h, p, pre, b, post: f"SIP/2.0/{t} {h}{p}{pre};branch={b}{post}",
    st.sampled_from(["UDP", "TCP", "udp", "TLS"]),
    st.sampled_from(["10.0.0.1", "host.example.com", "Host.example", "a-", "[::1]"]),
    st.sampled_from(["", ":5060", ":70000", ":1"]),
    st.sampled_from(["", ";rport", ";received=1.2.3.4"]),
    tags.filter(bool),
    st.sampled_from(["", ";rport", ";rport=9", ", SIP/2.0/UDP x"]),
)


@settings(max_examples=600, deadline=None)
@given(via_values)
def test_top_via_reader_agrees_with_via_parse(value: str) -> None:
    msg = parse_message(_message(Via=value))
    expected = _outcome(lambda: ViaType.parse(split_header_values(value)[0]))
    got = _outcome(lambda: msg.via)
    assert got == expected
    if got[0] == "ok":
        assert type(msg.via) is ViaType


def test_readers_on_a_usual_request() -> None:
    msg = parse_message(_message(CSeq="4711 INVITE", **{"Call-ID": "abc@h"}))
    assert (msg.cseq.seq, msg.cseq.method) == (4711, "INVITE")
    assert msg.call_id == "abc@h"
    assert msg.from_tag == "1"
    assert msg.via.branch == "z9hG4bK-1"
    assert (msg.via.host, msg.via.port, msg.via.transport) == ("10.0.0.1", 5060, "UDP")


def test_readers_refuse_bad_values() -> None:
    assert _outcome(lambda: parse_message(_message(CSeq="2147483648 INVITE")).cseq) == (
        "error", "Bad CSeq")  # fmt: skip
    assert _outcome(lambda: parse_message(_message(**{"Call-ID": "a b"})).call_id) == (
        "error", "Bad Call-ID")  # fmt: skip
    assert _outcome(lambda: parse_message(_message(Via="SIP/2.0/UDP h:99999;branch=z")).via) == (
        "error", "Bad Via sent-by")  # fmt: skip
