"""Client transactions driven through SipCore on a fake clock (RFC 3261 17.1, RFC 6026 7.2)."""

from __future__ import annotations

import pytest

from pbx.sip.events import ResponseReceived, TransactionTimedOut, TransportErrorOccurred
from pbx.sip.message import Request
from pbx.sip.timers import TimerName
from pbx.sip.transaction import ClientKey, State
from tests.unit.sip.test_transaction_support import BOB, T1, T2, T4, Driver, make_request, reply


def start(method: str = "INVITE", transport: str = "UDP", **kw) -> tuple[Driver, ClientKey]:
    d = Driver()
    key = d.core.send_request(make_request(method, transport=transport, **kw), BOB, transport, 0.0)
    d.drain()
    return d, key


def times(d: Driver) -> list[float]:
    return [round(s.at, 3) for s in d.take_sent()]


# ---------------------------------------------------------------- INVITE, unreliable


def test_invite_timer_a_doubles_without_cap_until_timer_b() -> None:
    d, key = start("INVITE")
    d.run_until(100.0)
    # A: T1, 2T1, 4T1 ... (17.1.1.2); B = 64*T1 = 32 s ends it after 7 sends.
    assert times(d) == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert d.take_events() == [TransactionTimedOut(key, "INVITE", TimerName.B)]
    assert d.core.transaction_count == 0
    assert d.core.next_deadline() is None


def test_invite_retransmissions_are_the_same_bytes() -> None:
    d, _ = start("INVITE")
    d.run_until(2.0)
    sent = d.take_sent()
    assert len(sent) == 3
    assert sent[0].out.data == sent[1].out.data == sent[2].out.data
    assert sent[0].out.destination == BOB


def test_provisional_stops_timer_a_and_b() -> None:
    d, key = start("INVITE")
    request = d.take_sent()[0].message
    d.clock.set(0.2)
    d.receive(reply(request, 180))
    assert [type(e) for e in d.take_events()] == [ResponseReceived]
    d.run_until(500.0)
    assert d.take_sent() == []
    assert d.take_events() == []
    assert d.core.transaction_state(key) is State.PROCEEDING


def test_non_2xx_final_is_acked_per_17_1_1_3() -> None:
    routes = ["<sip:proxy1.example.com;lr>", "<sip:proxy2.example.com;lr>"]
    d, key = start("INVITE", cseq=7, routes=routes)
    invite = d.take_sent()[0].message
    d.clock.set(1.0)
    d.receive(reply(invite, 486))
    [event] = d.take_events()
    assert isinstance(event, ResponseReceived) and event.response.status == 486
    assert event.tx == key
    [sent] = d.take_sent()
    ack = sent.message
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert str(ack.uri) == str(invite.uri)
    assert ack.headers.getall("Via") == invite.headers.getall("Via")[:1]
    assert ack.via.branch == invite.via.branch == key.branch
    assert ack.call_id == invite.call_id
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.to_tag == "bob1"
    assert str(ack.cseq) == "7 ACK"
    assert ack.headers.getall("Route") == routes
    assert d.core.transaction_state(key) is State.COMPLETED


def test_retransmitted_final_gets_the_same_ack_and_is_not_passed_up() -> None:
    d, key = start("INVITE")
    invite = d.take_sent()[0].message
    busy = reply(invite, 486)
    d.receive(busy)
    first_ack = d.take_sent()[0].out.data
    d.take_events()
    d.clock.set(5.0)
    d.receive(busy)
    assert [s.out.data for s in d.take_sent()] == [first_ack]
    assert d.take_events() == []


def test_timer_d_is_32_seconds_on_udp() -> None:
    d, key = start("INVITE")
    d.receive(reply(d.take_sent()[0].message, 603))
    assert d.core.next_deadline() == pytest.approx(32.0)
    d.run_until(31.9)
    assert d.core.transaction_state(key) is State.COMPLETED
    d.run_until(32.0)
    assert d.core.transaction_count == 0


def test_2xx_enters_accepted_and_retransmissions_reach_the_tu() -> None:
    d, key = start("INVITE")
    invite = d.take_sent()[0].message
    ok = reply(invite, 200)
    d.clock.set(0.3)
    d.receive(ok)
    assert d.take_sent() == []  # the TU ACKs a 2xx, not the transaction (13.2.2.4)
    assert d.core.transaction_state(key) is State.ACCEPTED
    d.clock.set(1.0)
    d.receive(ok)
    events = d.take_events()
    assert [(type(e), e.tx) for e in events] == [(ResponseReceived, key)] * 2
    assert d.core.next_deadline() == pytest.approx(0.3 + 64 * T1)  # Timer M
    d.run_until(0.3 + 64 * T1)
    assert d.core.transaction_count == 0
    d.receive(ok)  # after Timer M: no transaction, still the TU's business
    [late] = d.take_events()
    assert isinstance(late, ResponseReceived) and late.tx is None


def test_accepted_absorbs_non_2xx() -> None:
    d, key = start("INVITE")
    invite = d.take_sent()[0].message
    d.receive(reply(invite, 200))
    d.take_events()
    d.receive(reply(invite, 180))
    d.receive(reply(invite, 500))
    assert d.take_events() == [] and d.take_sent() == []


# ---------------------------------------------------------------- non-INVITE, unreliable


def test_timer_e_doubles_and_caps_at_t2_until_timer_f() -> None:
    d, key = start("OPTIONS")
    d.run_until(100.0)
    expected = [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert times(d) == expected
    assert d.take_events() == [TransactionTimedOut(key, "OPTIONS", TimerName.F)]
    assert d.core.transaction_count == 0


def test_timer_e_becomes_t2_in_proceeding() -> None:
    d, key = start("REGISTER")
    request = d.take_sent()[0].message
    d.clock.set(0.1)
    d.receive(reply(request, 100))
    d.run_until(10.0)
    # E was armed for 0.5; from Proceeding on it fires every T2 (17.1.2.2).
    assert times(d) == [0.5, 0.5 + T2, 0.5 + 2 * T2]


def test_final_response_then_timer_k_absorbs_retransmissions() -> None:
    d, key = start("OPTIONS")
    request = d.take_sent()[0].message
    ok = reply(request, 200)
    d.clock.set(0.2)
    d.receive(ok)
    d.receive(ok)
    d.receive(reply(request, 100))
    [event] = d.take_events()
    assert isinstance(event, ResponseReceived) and event.response.status == 200
    assert d.core.next_deadline() == pytest.approx(0.2 + T4)
    d.run_until(0.2 + T4)
    assert d.take_sent() == [] and d.core.transaction_count == 0


def test_non_invite_provisionals_are_passed_up() -> None:
    d, key = start("OPTIONS")
    request = d.take_sent()[0].message
    d.receive(reply(request, 100))
    d.receive(reply(request, 183))
    statuses = [e.response.status for e in d.take_events()]
    assert statuses == [100, 183]
    assert d.core.transaction_state(key) is State.PROCEEDING


# ---------------------------------------------------------------- reliable transports


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_no_retransmissions_on_tcp_and_timeout_at_64_t1(method: str) -> None:
    d, key = start(method, transport="TCP")
    d.run_until(100.0)
    assert times(d) == [0.0]
    [event] = d.take_events()
    assert isinstance(event, TransactionTimedOut) and event.timer in (TimerName.B, TimerName.F)
    assert d.clock.now() == 100.0


def test_timer_d_is_zero_on_tcp() -> None:
    d, key = start("INVITE", transport="TCP")
    d.receive(reply(d.take_sent()[0].message, 486), transport="TCP")
    assert [s.message.method for s in d.take_sent()] == ["ACK"]
    assert d.core.transaction_count == 0


def test_timer_k_is_zero_on_tcp() -> None:
    d, key = start("OPTIONS", transport="TCP")
    d.receive(reply(d.take_sent()[0].message, 200), transport="TCP")
    assert d.core.transaction_count == 0 and d.core.next_deadline() is None


# ---------------------------------------------------------------- errors and CANCEL


def test_transport_error_terminates_and_informs_the_tu() -> None:
    d, key = start("OPTIONS")
    [sent] = d.take_sent()
    assert sent.out.tx == key
    d.core.transport_error(sent.out.tx, 0.01)
    d.drain()
    assert d.take_events() == [TransportErrorOccurred(key, "OPTIONS")]
    assert d.core.transaction_count == 0


def test_cancel_waits_for_a_provisional_response() -> None:
    d, key = start("INVITE", cseq=3)
    invite = d.take_sent()[0].message
    assert d.core.cancel(key, 0.1) is True
    d.drain()
    assert d.take_sent() == []  # 9.1: no CANCEL before a 1xx
    d.clock.set(0.2)
    d.receive(reply(invite, 180))
    [sent] = d.take_sent()
    cancel = sent.message
    assert cancel.method == "CANCEL" and str(cancel.cseq) == "3 CANCEL"
    assert cancel.via.branch == invite.via.branch
    assert cancel.to_tag is None and cancel.call_id == invite.call_id
    assert d.core.transaction_state(ClientKey(key.branch, "CANCEL")) is State.TRYING
    d.receive(reply(cancel, 200))
    d.receive(reply(invite, 487))
    kinds = [(e.tx.method, e.response.status) for e in d.take_events()]
    assert kinds == [("INVITE", 180), ("CANCEL", 200), ("INVITE", 487)]
    assert [s.message.method for s in d.take_sent()] == ["ACK"]


def test_cancelled_invite_without_final_is_destroyed_after_64_t1() -> None:
    d, key = start("INVITE", transport="TCP")
    invite = d.take_sent()[0].message
    d.receive(reply(invite, 180), transport="TCP")
    d.clock.set(1.0)
    assert d.core.cancel(key, 1.0)
    d.drain()
    d.run_until(1.0 + 64 * T1)
    events = [e for e in d.take_events() if isinstance(e, TransactionTimedOut)]
    assert TransactionTimedOut(key, "INVITE", TimerName.CANCEL_GUARD) in events
    assert d.core.transaction_count == 0


def test_cancel_after_final_is_refused() -> None:
    d, key = start("INVITE")
    d.receive(reply(d.take_sent()[0].message, 486))
    assert d.core.cancel(key, 1.0) is False
    assert d.core.cancel(ClientKey("z9hG4bKnone", "INVITE"), 1.0) is False
