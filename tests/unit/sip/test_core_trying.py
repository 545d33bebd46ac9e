"""The 100 Trying of a new INVITE (RFC 3261 17.2.1): sent unless the TU answers first.

The core offers the 100 when the INVITE arrives and queues it at the next pop_outgoing();
a TU that answers before that drain (the shell hands events over first) saves it.
"""

from __future__ import annotations

from pbx.sip.core import SipCore
from pbx.sip.events import RequestReceived
from pbx.sip.message import parse_message
from pbx.sip.transaction import State
from tests.unit.sip.test_transaction_support import ALICE, BOB, CONFIG, make_request, reply


def _invite(core: SipCore, now: float = 0.0, transport: str = "UDP") -> RequestReceived:
    core.receive(bytes(make_request("INVITE", transport=transport)), ALICE, transport, now)
    [event] = core.pop_events()
    assert isinstance(event, RequestReceived)
    return event


def _lines(core: SipCore) -> list[str]:
    return [out.data.split(b"\r\n", 1)[0].decode() for out in core.pop_outgoing()]


def test_a_tu_answering_before_the_drain_sends_no_100() -> None:
    core = SipCore(CONFIG)
    event = _invite(core)
    core.send_response(event.tx, reply(event.request, 407), 0.0)
    assert _lines(core) == ["SIP/2.0 407 Proxy Authentication Required"]
    assert _lines(core) == []  # not released later either
    assert core.transaction_state(event.tx) is State.COMPLETED


def test_a_provisional_from_the_tu_replaces_the_100() -> None:
    core = SipCore(CONFIG)
    event = _invite(core)
    core.send_response(event.tx, reply(event.request, 180), 0.05)
    assert _lines(core) == ["SIP/2.0 180 Ringing"]
    core.receive(bytes(event.request), ALICE, "UDP", 0.5)  # retransmission: the latest 1xx
    assert _lines(core) == ["SIP/2.0 180 Ringing"]


def test_an_unanswered_invite_gets_its_100_at_the_next_drain() -> None:
    core = SipCore(CONFIG)
    event = _invite(core)
    [out] = core.pop_outgoing()
    trying = parse_message(out.data)
    assert (trying.status, trying.to_tag) == (100, None)  # 17.2.1: no To tag on the 100
    assert out.destination == ALICE and out.tx == event.tx and out.transport == "UDP"
    core.send_response(event.tx, reply(event.request, 486), 1.0)
    assert _lines(core) == ["SIP/2.0 486 Busy Here"]


def test_the_100_leaves_before_what_the_tu_queued_in_the_same_turn() -> None:
    core = SipCore(CONFIG)
    _invite(core)
    core.send_request(make_request("INVITE", branch="z9hG4bKfork1"), BOB, "UDP", 0.0)
    assert _lines(core) == ["SIP/2.0 100 Trying", "INVITE sip:bob@127.0.0.1:5070 SIP/2.0"]


def test_a_retransmission_before_the_drain_yields_one_100_and_then_resends_it() -> None:
    core = SipCore(CONFIG)
    event = _invite(core)
    core.receive(bytes(event.request), ALICE, "UDP", 0.1)
    assert core.pop_events() == []  # absorbed by the transaction
    assert _lines(core) == ["SIP/2.0 100 Trying"]
    core.receive(bytes(event.request), ALICE, "UDP", 0.6)
    assert _lines(core) == ["SIP/2.0 100 Trying"]


def test_a_100_is_offered_per_invite_and_over_tcp_too() -> None:
    core = SipCore(CONFIG)
    first = _invite(core, transport="TCP")
    core.receive(bytes(make_request("INVITE", branch="z9hG4bKtest2")), ALICE, "UDP", 0.0)
    [second] = core.pop_events()
    core.send_response(second.tx, reply(second.request, 404), 0.0)
    outs = core.pop_outgoing()
    assert [(o.tx, o.data.split(b"\r\n", 1)[0]) for o in outs] == [
        (first.tx, b"SIP/2.0 100 Trying"),
        (second.tx, b"SIP/2.0 404 Not Found"),
    ]


def test_non_invite_requests_get_no_100() -> None:
    core = SipCore(CONFIG)
    core.receive(bytes(make_request("OPTIONS")), ALICE, "UDP", 0.0)
    assert len(core.pop_events()) == 1
    assert core.pop_outgoing() == []
