"""The Via spelling most phones send is read by one regex (_COMMON_VIA) and the values it
builds are the ones the full grammar builds (RFC 3261 20.42, 25.1; RFC 3581 rport), on
generated values around the edges of that spelling: case, host ends, ports, the order and
repetition of branch and rport, and other parameters."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip.errors import ParseError
from pbx.sip.headers import _COMMON_VIA, _VIA, CSeq, Via
from pbx.sip.uri import PARAM, params_dict


def _full_via(text: str) -> Via:
    """Via by the full grammar only (the slow path, no shortcut)."""
    match = _VIA.fullmatch(text)
    if match is None:
        raise ParseError("Bad Via")
    name, version, transport, host, port_text, param_text = match.group(1, 2, 3, 4, 5, 6)
    port = None if port_text is None else int(port_text)
    if port is not None and port > 65535:
        raise ParseError("Bad Via sent-by")
    params = params_dict(PARAM.findall(param_text)) if param_text else {}
    return Via(f"{name.upper()}/{version}", transport.upper(), host.lower(), port, params)


def _outcome(text: str, parse):  # type: ignore[no-untyped-def]
    try:
        via = parse(text)
    except ParseError as exc:
        return ("error", exc.reason)
    return ("ok", via, list(via.params), type(via))


transports = st.sampled_from(["UDP", "TCP", "TLS", "WS", "udp", "Tcp", "X1", "SCTP"])
hosts = st.sampled_from(
    ["192.168.1.34", "pbx.example.com", "Host.Example", "h", "_sip.x", "a-", "-a", "a.", ".a",
     "a_b", "[2001:db8::1]", "a--b", "0"]
)  # fmt: skip
ports = st.none() | st.integers(0, 99999).map(str) | st.sampled_from(["", "007", "123456"])
branches = st.sampled_from(["z9hG4bK-524287-1---8c2e1a9d3f6b4e11", "z9hG4bK1", "x", "a=b", ""])
param_items = st.sampled_from(
    [";rport", ";branch={b}", ";Branch={b}", ";rport=5060", ";received=10.0.0.1", ";lr",
     ";RPORT", ";branch=other", ";rport="]
)  # fmt: skip


@st.composite
def via_texts(draw: st.DrawFn) -> str:
    transport, host, port = draw(transports), draw(hosts), draw(ports)
    branch = draw(branches)
    params = draw(st.lists(param_items, max_size=4))
    if draw(st.booleans()):  # the common shapes, so that the shortcut is hit often
        params = draw(st.sampled_from([[";branch={b}"], [";branch={b}", ";rport"],
                                       [";rport", ";branch={b}"],
                                       [";rport", ";branch={b}", ";rport"]]))  # fmt: skip
    hostport = host if port is None else f"{host}:{port}"
    return f"SIP/2.0/{transport} {hostport}" + "".join(params).replace("{b}", branch)


@settings(max_examples=3000, deadline=None)
@given(via_texts())
def test_common_via_agrees_with_the_full_grammar(text: str) -> None:
    assert _outcome(text, Via.parse) == _outcome(text, _full_via)


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK1;rport", {"branch": "z9hG4bK1", "rport": None}),
        ("SIP/2.0/UDP 10.0.0.2:5060;rport;branch=z9hG4bK1", {"rport": None, "branch": "z9hG4bK1"}),
        ("SIP/2.0/TCP h;branch=z9hG4bK1", {"branch": "z9hG4bK1"}),
        ("SIP/2.0/UDP h;rport;branch=z9hG4bK1;rport", {"rport": None, "branch": "z9hG4bK1"}),
    ],
)  # fmt: skip
def test_common_spellings_take_the_shortcut(text: str, params: dict[str, str | None]) -> None:
    assert _COMMON_VIA.fullmatch(text) is not None
    via = Via.parse(text)
    assert via.params == params and list(via.params) == list(params)
    assert via == _full_via(text)
    assert str(via) == text.replace(";rport;branch=z9hG4bK1;rport", ";rport;branch=z9hG4bK1")


def test_shortcut_values_are_ordinary_frozen_vias() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.7:5062;branch=z9hG4bKab;rport")
    assert type(via) is Via
    assert via == Via("SIP/2.0", "UDP", "10.0.0.7", 5062, {"branch": "z9hG4bKab", "rport": None})
    assert via.sent_by == ("10.0.0.7", 5062) and via.rport is True and via.branch == "z9hG4bKab"
    with pytest.raises(dataclasses.FrozenInstanceError):
        via.port = 1  # type: ignore[misc]
    assert dataclasses.replace(via, port=5070).port == 5070


def test_shortcut_refuses_a_port_above_65535() -> None:
    with pytest.raises(ParseError, match="Bad Via sent-by"):
        Via.parse("SIP/2.0/UDP 10.0.0.7:65536;branch=z9hG4bKab;rport")


def test_cseq_shortcut_values_are_ordinary_frozen_cseqs() -> None:
    cseq = CSeq.parse("2 REGISTER")
    assert type(cseq) is CSeq and cseq == CSeq(2, "REGISTER")
    assert hash(cseq) == hash(CSeq(2, "REGISTER")) and repr(cseq) == repr(CSeq(2, "REGISTER"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cseq.seq = 3  # type: ignore[misc]
