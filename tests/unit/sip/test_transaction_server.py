"""Server transactions driven through SipCore on a fake clock (RFC 3261 17.2, RFC 6026 7.1)."""

from __future__ import annotations

import pytest

from pbx.sip.errors import LocalProtocolError
from pbx.sip.events import RequestReceived, TransactionTimedOut
from pbx.sip.timers import TimerName
from pbx.sip.transaction import State
from tests.unit.sip.test_transaction_support import (
    ALICE,
    T1,
    T4,
    Driver,
    make_request,
    reply,
)


def incoming(method: str = "INVITE", transport: str = "UDP", **kw) -> tuple[Driver, object]:
    d = Driver()
    request = make_request(method, transport=transport, **kw)
    d.receive(request, source=ALICE, transport=transport)
    [event] = d.take_events()
    assert isinstance(event, RequestReceived) and event.request.method == method
    return d, event


def first_lines(d: Driver) -> list[str]:
    return [s.first_line for s in d.take_sent()]


def test_invite_gets_100_trying_at_once_without_to_tag() -> None:
    d, event = incoming("INVITE")
    [sent] = d.take_sent()
    assert sent.first_line == "SIP/2.0 100 Trying"
    assert sent.message.to_tag is None
    assert sent.out.destination == ALICE and sent.out.tx == event.tx
    assert d.core.transaction_state(event.tx) is State.PROCEEDING


def test_invite_retransmission_gets_the_latest_provisional() -> None:
    d, event = incoming("INVITE")
    d.take_sent()
    d.receive(event.request, source=ALICE)
    assert first_lines(d) == ["SIP/2.0 100 Trying"]
    d.core.send_response(event.tx, reply(event.request, 180), 0.1)
    d.drain()
    d.receive(event.request, source=ALICE)
    assert first_lines(d) == ["SIP/2.0 180 Ringing", "SIP/2.0 180 Ringing"]
    assert d.take_events() == []  # retransmissions never reach the TU


def test_failure_is_retransmitted_by_timer_g_until_timer_h() -> None:
    d, event = incoming("INVITE")
    d.take_sent()
    d.core.send_response(event.tx, reply(event.request, 486), 0.0)
    d.drain()
    d.run_until(100.0)
    at = [round(s.at, 3) for s in d.take_sent()]
    # G: T1, 2T1, 4T1, capped at T2 = 4 s (17.2.1); H = 64*T1 = 32 s.
    assert at == [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert d.take_events() == [TransactionTimedOut(event.tx, "INVITE", TimerName.H)]
    assert d.core.transaction_count == 0


def test_ack_confirms_and_timer_i_ends_it() -> None:
    d, event = incoming("INVITE")
    d.take_sent()
    busy = reply(event.request, 486)
    d.core.send_response(event.tx, busy, 0.0)
    d.drain()
    d.run_until(0.7)  # Timer G fires once, at 0.5
    ack = make_request("ACK", to_tag="bob1")
    d.receive(ack, source=ALICE)
    assert d.core.transaction_state(event.tx) is State.CONFIRMED
    assert d.take_events() == []  # the ACK for a failure is the transaction's
    d.receive(ack, source=ALICE)
    d.receive(event.request, source=ALICE)  # absorbed in Confirmed
    d.run_until(0.7 + T4 - 0.01)
    assert [(s.first_line, s.at) for s in d.take_sent()] == [
        ("SIP/2.0 486 Busy Here", 0.0),
        ("SIP/2.0 486 Busy Here", 0.5),
    ]
    d.run_until(0.7 + T4)
    assert d.core.transaction_count == 0


def test_2xx_enters_accepted_absorbs_invite_and_passes_ack_up() -> None:
    d, event = incoming("INVITE")
    d.take_sent()
    ok = reply(event.request, 200)
    d.core.send_response(event.tx, ok, 0.0)
    d.drain()
    assert first_lines(d) == ["SIP/2.0 200 OK"]
    assert d.core.transaction_state(event.tx) is State.ACCEPTED
    d.receive(event.request, source=ALICE)
    assert d.take_sent() == [] and d.take_events() == []  # RFC 6026 7.1
    d.core.send_response(event.tx, ok, 0.5)  # the TU retransmits its 2xx
    d.drain()
    assert first_lines(d) == ["SIP/2.0 200 OK"]
    ack = make_request("ACK", to_tag="bob1")
    d.receive(ack, source=ALICE)
    [up] = d.take_events()
    assert isinstance(up, RequestReceived) and up.tx == event.tx and up.request.method == "ACK"
    d.run_until(64 * T1)
    assert d.core.transaction_count == 0
    d.receive(ack, source=ALICE)
    [late] = d.take_events()
    assert isinstance(late, RequestReceived) and late.tx is None


def test_2xx_ack_with_its_own_branch_goes_to_the_tu_without_a_transaction() -> None:
    d, event = incoming("INVITE")
    d.core.send_response(event.tx, reply(event.request, 200), 0.0)
    d.drain()
    d.receive(make_request("ACK", branch="z9hG4bKack2xx", to_tag="bob1"), source=ALICE)
    [up] = d.take_events()
    assert isinstance(up, RequestReceived) and up.tx is None
    assert d.core.transaction_count == 1


def test_provisional_after_final_is_our_misuse() -> None:
    d, event = incoming("INVITE")
    d.core.send_response(event.tx, reply(event.request, 486), 0.0)
    with pytest.raises(LocalProtocolError):
        d.core.send_response(event.tx, reply(event.request, 180), 0.1)


def test_non_invite_trying_absorbs_then_answers_retransmissions() -> None:
    d, event = incoming("OPTIONS")
    assert d.take_sent() == []  # no automatic 100 for non-INVITE
    d.receive(event.request, source=ALICE)
    assert d.take_sent() == [] and d.take_events() == []
    d.core.send_response(event.tx, reply(event.request, 100), 0.1)
    d.drain()
    d.receive(event.request, source=ALICE)
    d.core.send_response(event.tx, reply(event.request, 200), 0.2)
    d.drain()
    d.receive(event.request, source=ALICE)
    assert first_lines(d) == ["SIP/2.0 100 Trying"] * 2 + ["SIP/2.0 200 OK"] * 2


def test_timer_j_is_64_t1_on_udp() -> None:
    d, event = incoming("OPTIONS")
    d.core.send_response(event.tx, reply(event.request, 200), 0.0)
    assert d.core.next_deadline() == pytest.approx(64 * T1)
    d.run_until(64 * T1 - 0.01)
    assert d.core.transaction_count == 1
    d.run_until(64 * T1)
    assert d.core.transaction_count == 0


def test_timers_i_and_j_are_zero_and_g_unarmed_on_tcp() -> None:
    d, event = incoming("OPTIONS", transport="TCP")
    d.core.send_response(event.tx, reply(event.request, 200), 0.0)
    assert d.core.transaction_count == 0
    d, event = incoming("INVITE", transport="TCP")
    d.core.send_response(event.tx, reply(event.request, 486), 0.0)
    d.drain()
    d.run_until(10.0)
    assert first_lines(d) == ["SIP/2.0 100 Trying", "SIP/2.0 486 Busy Here"]
    d.receive(make_request("ACK", to_tag="bob1", transport="TCP"), source=ALICE, transport="TCP")
    assert d.core.transaction_count == 0


def test_response_goes_to_the_source_when_rport_is_asked_for() -> None:
    d = Driver()
    request = make_request("OPTIONS", via_host="10.0.0.7:5062;rport")
    d.receive(request, source=("203.0.113.9", 40000))
    [event] = d.take_events()
    d.core.send_response(event.tx, reply(event.request, 200), 0.0)
    d.drain()
    assert d.take_sent()[0].out.destination == ("203.0.113.9", 40000)


def test_response_goes_to_the_sent_by_port_at_the_source_address_without_rport() -> None:
    d = Driver()
    d.receive(make_request("OPTIONS", via_host="10.0.0.7:5062"), source=("203.0.113.9", 40000))
    [event] = d.take_events()
    d.core.send_response(event.tx, reply(event.request, 200), 0.0)
    d.drain()
    assert d.take_sent()[0].out.destination == ("203.0.113.9", 5062)
