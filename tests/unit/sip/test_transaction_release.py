"""A transaction past its final response lets go of what it no longer sends or reads.

The core keeps finished transactions until their wait timers (32 s for Timers J, L and M),
so what they hold is what the garbage collector walks under load. These tests pin that the
messages go and that the RFC 3261 17 / RFC 6026 behaviour of those states stays.
"""

from __future__ import annotations

from pbx.sip.core import SipCore
from pbx.sip.events import RequestReceived, ResponseReceived
from pbx.sip.transaction import RELEASED_REQUEST, State
from tests.unit.sip.test_transaction_support import ALICE, BOB, CONFIG, T1, make_request, reply


def _server_invite(core: SipCore) -> RequestReceived:
    core.receive(bytes(make_request("INVITE")), ALICE, "UDP", 0.0)
    [event] = core.pop_events()
    core.pop_outgoing()  # the 100 Trying
    return event


def test_an_accepted_invite_keeps_neither_the_invite_nor_the_2xx() -> None:
    core = SipCore(CONFIG)
    event = _server_invite(core)
    ok = reply(event.request, 200)
    core.send_response(event.tx, ok, 0.1)
    assert [o.data for o in core.pop_outgoing()] == [bytes(ok)]
    tx = core._transactions[event.tx]
    assert tx.request is RELEASED_REQUEST and tx.last_response is None
    assert tx.method == "INVITE"
    core.receive(bytes(event.request), ALICE, "UDP", 0.5)  # absorbed (RFC 6026 7.1)
    assert core.pop_outgoing() == [] and core.pop_events() == []
    core.send_response(event.tx, ok, 0.6)  # the TU's 2xx retransmission (13.3.1.4)
    assert [o.data for o in core.pop_outgoing()] == [bytes(ok)]
    core.receive(bytes(make_request("ACK", to_tag="bob1")), ALICE, "UDP", 0.7)
    [ack] = core.pop_events()
    assert ack.request.method == "ACK" and ack.tx == event.tx
    core.handle_timers(0.1 + 64 * T1)
    assert core.transaction_count == 0


def test_a_rejected_invite_resends_its_final_as_sent_and_forgets_it_once_acked() -> None:
    core = SipCore(CONFIG)
    event = _server_invite(core)
    busy = reply(event.request, 486)
    core.send_response(event.tx, busy, 0.0)
    [first] = core.pop_outgoing()
    tx = core._transactions[event.tx]
    assert tx.request is RELEASED_REQUEST and tx.last_response == first.data == bytes(busy)
    core.handle_timers(T1)  # Timer G
    core.receive(bytes(event.request), ALICE, "UDP", T1 + 0.1)  # a retransmitted INVITE
    assert [o.data for o in core.pop_outgoing()] == [first.data, first.data]
    core.receive(bytes(make_request("ACK", to_tag="bob1")), ALICE, "UDP", 1.0)
    assert core.transaction_state(event.tx) is State.CONFIRMED and tx.last_response is None
    core.receive(bytes(event.request), ALICE, "UDP", 1.1)  # Confirmed absorbs it
    assert core.pop_outgoing() == [] and core.pop_events() == []


def test_a_client_invite_lets_its_request_go_after_a_2xx_and_still_passes_2xx_up() -> None:
    core = SipCore(CONFIG)
    invite = make_request("INVITE", branch="z9hG4bKout1")
    key = core.send_request(invite, BOB, "UDP", 0.0)
    core.pop_outgoing()
    ok = bytes(reply(invite, 200))
    core.receive(ok, BOB, "UDP", 0.1)
    core.receive(ok, BOB, "UDP", 0.6)  # retransmitted 2xx: the TU ACKs it again (RFC 6026 7.2)
    assert [(type(e), e.tx) for e in core.pop_events()] == [(ResponseReceived, key)] * 2
    assert core._transactions[key].request is RELEASED_REQUEST


def test_a_client_invite_acks_every_failure_retransmission_with_its_one_ack() -> None:
    core = SipCore(CONFIG)
    invite = make_request("INVITE", branch="z9hG4bKout2")
    key = core.send_request(invite, BOB, "UDP", 0.0)
    core.pop_outgoing()
    busy = bytes(reply(invite, 486))
    core.receive(busy, BOB, "UDP", 0.1)
    [ack] = core.pop_outgoing()
    assert ack.data.startswith(b"ACK sip:bob@127.0.0.1:5070 SIP/2.0\r\n")
    assert b"branch=z9hG4bKout2" in ack.data  # 17.1.1.3: the INVITE's branch
    assert core._transactions[key].request is RELEASED_REQUEST
    core.receive(busy, BOB, "UDP", 0.2)
    assert [o.data for o in core.pop_outgoing()] == [ack.data]


def test_a_client_non_invite_lets_its_request_go_once_completed() -> None:
    core = SipCore(CONFIG)
    bye = make_request("BYE", branch="z9hG4bKbye1", to_tag="bob1")
    key = core.send_request(bye, BOB, "UDP", 0.0)
    core.pop_outgoing()
    core.receive(bytes(reply(bye, 200)), BOB, "UDP", 0.1)
    assert core.transaction_state(key) is State.COMPLETED
    assert core._transactions[key].request is RELEASED_REQUEST
    core.handle_timers(1.0)  # Timer E would have fired: nothing is retransmitted
    assert core.pop_outgoing() == []
