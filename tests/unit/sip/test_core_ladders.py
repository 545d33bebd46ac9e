"""Two SipCores talking end to end on a fake clock: whole call-setup ladders, no sockets."""

from __future__ import annotations

from pbx.sip.core import SipCore
from pbx.sip.events import (
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from pbx.sip.message import Request
from pbx.sip.timers import TimerName
from pbx.sip.transaction import COMPLETED_ELSEWHERE, State
from tests.unit.sip.test_transaction_support import ALICE, BOB, CONFIG, T1, make_request


def carry(src: SipCore, dst: SipCore, source: tuple[str, int], now: float) -> list[str]:
    lines = []
    for out in src.pop_outgoing():
        lines.append(out.data.split(b"\r\n", 1)[0].decode())
        dst.receive(out.data, source, out.transport, now)
    return lines


def test_invite_200_ack_ladder_leaves_both_cores_empty() -> None:
    alice, bob = SipCore(CONFIG), SipCore(CONFIG)
    key = alice.send_request(make_request("INVITE"), BOB, "UDP", 0.0)
    assert carry(alice, bob, ALICE, 0.0) == ["INVITE sip:bob@127.0.0.1:5070 SIP/2.0"]
    [incoming] = bob.pop_events()
    assert isinstance(incoming, RequestReceived)
    assert carry(bob, alice, BOB, 0.0) == ["SIP/2.0 100 Trying"]  # drained before the TU answered
    bob.send_response(incoming.tx, incoming.request.make_response(180, to_tag="b"), 0.1)
    bob.send_response(incoming.tx, incoming.request.make_response(200, to_tag="b"), 0.2)
    assert carry(bob, alice, BOB, 0.2) == ["SIP/2.0 180 Ringing", "SIP/2.0 200 OK"]
    statuses = [(e.tx, e.response.status) for e in alice.pop_events()]
    assert statuses == [(key, 100), (key, 180), (key, 200)]
    assert alice.transaction_state(key) is State.ACCEPTED
    assert bob.transaction_state(incoming.tx) is State.ACCEPTED
    ack = Request(
        "ACK",
        "sip:bob@127.0.0.1:5070",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack1"),
            ("Max-Forwards", "70"),
            ("From", '"Alice" <sip:alice@example.com>;tag=alice1'),
            ("To", "<sip:bob@example.com>;tag=b"),
            ("Call-ID", "call-1@127.0.0.1"),
            ("CSeq", "1 ACK"),
        ],
    )
    alice.send_stateless(ack, BOB, "UDP")
    carry(alice, bob, ALICE, 0.3)
    [acked] = bob.pop_events()
    assert isinstance(acked, RequestReceived) and acked.tx is None
    assert acked.request.method == "ACK"
    alice.handle_timers(0.2 + 64 * T1)
    bob.handle_timers(0.2 + 64 * T1)
    assert alice.transaction_count == bob.transaction_count == 0
    assert alice.next_deadline() is None and bob.next_deadline() is None


def test_cancel_ladder_200_487_ack_leaves_nothing_behind() -> None:
    alice, bob = SipCore(CONFIG), SipCore(CONFIG)
    key = alice.send_request(make_request("INVITE"), BOB, "UDP", 0.0)
    carry(alice, bob, ALICE, 0.0)
    [incoming] = bob.pop_events()
    carry(bob, alice, BOB, 0.0)  # 100 Trying
    alice.pop_events()
    assert alice.cancel(key, 5.0)
    assert carry(alice, bob, ALICE, 5.0) == ["CANCEL sip:bob@127.0.0.1:5070 SIP/2.0"]
    [cancel] = bob.pop_events()
    assert cancel.request.method == "CANCEL"
    assert bob.invite_for_cancel(cancel.tx) == incoming.tx
    bob.send_response(cancel.tx, cancel.request.make_response(200, to_tag="b"), 5.0)
    bob.send_response(incoming.tx, incoming.request.make_response(487, to_tag="b"), 5.0)
    assert carry(bob, alice, BOB, 5.0) == ["SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated"]
    assert carry(alice, bob, ALICE, 5.0) == ["ACK sip:bob@127.0.0.1:5070 SIP/2.0"]
    assert bob.transaction_state(incoming.tx) is State.CONFIRMED
    for core in (alice, bob):
        core.handle_timers(100.0)
        assert core.transaction_count == 0
    assert not any(isinstance(e, TransactionTimedOut) for e in alice.pop_events())


def test_a_cancel_carries_the_reason_it_was_given_also_when_it_waited_for_a_1xx() -> None:
    alice, bob = SipCore(CONFIG), SipCore(CONFIG)
    key = alice.send_request(make_request("INVITE"), BOB, "UDP", 0.0)
    carry(alice, bob, ALICE, 0.0)
    [incoming] = bob.pop_events()
    bob.pop_outgoing()  # the 100 Trying is lost: alice stays in Calling
    assert alice.cancel(key, 0.1, COMPLETED_ELSEWHERE)  # waits for a provisional (9.1)
    assert [o for o in alice.pop_outgoing() if o.data.startswith(b"CANCEL")] == []
    bob.send_response(incoming.tx, incoming.request.make_response(180, to_tag="b"), 0.2)
    carry(bob, alice, BOB, 0.2)
    carry(alice, bob, ALICE, 0.2)
    [cancel] = [e for e in bob.pop_events() if e.request.method == "CANCEL"]
    assert cancel.request.headers.get("Reason") == 'SIP;cause=200;text="Call completed elsewhere"'


def test_a_cancel_without_a_reason_has_no_reason_header_and_a_reason_never_sent_is_dropped():
    alice, bob = SipCore(CONFIG), SipCore(CONFIG)
    key = alice.send_request(make_request("INVITE"), BOB, "UDP", 0.0)
    carry(alice, bob, ALICE, 0.0)
    bob.pop_events()
    carry(bob, alice, BOB, 0.0)  # 100 Trying: Proceeding, the CANCEL goes at once
    assert alice.cancel(key, 0.1)
    carry(alice, bob, ALICE, 0.1)
    [cancel] = [e for e in bob.pop_events() if e.request.method == "CANCEL"]
    assert cancel.request.headers.get("Reason") is None
    # an INVITE that never hears back: its CANCEL never goes, and its reason goes with it
    lost = alice.send_request(make_request("INVITE", branch="z9hG4bKlost"), BOB, "UDP", 1.0)
    assert alice.cancel(lost, 1.1, COMPLETED_ELSEWHERE)
    alice.pop_outgoing()
    alice.handle_timers(200.0)
    assert alice.transaction_count == 0 and alice._cancel_reasons == {}


def test_server_transport_error_informs_the_tu_and_ends_the_transaction() -> None:
    bob = SipCore(CONFIG)
    bob.receive(bytes(make_request("INVITE", transport="TCP")), ALICE, "TCP", 0.0)
    [incoming] = bob.pop_events()
    bob.send_response(incoming.tx, incoming.request.make_response(486, to_tag="b"), 0.1)
    outs = bob.pop_outgoing()
    assert [o.tx for o in outs] == [incoming.tx]  # answered before the drain: no 100 (17.2.1)
    bob.transport_error(outs[-1].tx, 0.2)
    assert bob.pop_events() == [TransportErrorOccurred(incoming.tx, "INVITE")]
    assert bob.transaction_count == 0
    bob.transport_error(outs[-1].tx, 0.3)  # late reports of a gone transaction are ignored
    assert bob.pop_events() == []


def test_timer_h_when_the_ack_never_comes() -> None:
    bob = SipCore(CONFIG)
    bob.receive(bytes(make_request("INVITE", transport="TCP")), ALICE, "TCP", 0.0)
    [incoming] = bob.pop_events()
    bob.send_response(incoming.tx, incoming.request.make_response(500, to_tag="b"), 1.0)
    [info] = bob.dump(2.0)
    assert (info.role, info.method, info.state, info.timers) == (
        "server",
        "INVITE",
        "Completed",
        {"H": 31.0},
    )
    assert bob.next_deadline() == 1.0 + 64 * T1
    bob.handle_timers(1.0 + 64 * T1)
    assert bob.pop_events() == [TransactionTimedOut(incoming.tx, "INVITE", TimerName.H)]
    assert bob.transaction_state(incoming.tx) is None


def test_response_from_the_wire_for_a_server_key_is_a_stray() -> None:
    bob = SipCore(CONFIG)
    request = make_request("OPTIONS")
    bob.receive(bytes(request), ALICE, "UDP", 0.0)
    bob.pop_events()
    bob.receive(bytes(request.make_response(200, to_tag="x")), ALICE, "UDP", 0.1)
    [event] = bob.pop_events()
    assert isinstance(event, ResponseReceived) and event.tx is None
    assert bob.transaction_count == 1
