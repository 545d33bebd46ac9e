"""SipCore: matching (RFC 3261 17.1.3, 17.2.3), bad input (8.2, 18.1.2), the TU-facing API."""

from __future__ import annotations

import pytest

from pbx.sip.core import SipCore, response_destination
from pbx.sip.errors import LocalProtocolError
from pbx.sip.events import MessageRejected, RequestReceived, ResponseReceived
from pbx.sip.headers import Via
from pbx.sip.message import Response, parse_message
from pbx.sip.transaction import ClientKey, LegacyServerKey, ServerKey, State
from tests.unit.sip.test_transaction_support import (
    ALICE,
    BOB,
    CONFIG,
    Driver,
    make_request,
    reply,
)


def test_branch_is_added_when_missing_and_kept_when_present() -> None:
    core = SipCore(CONFIG, branch_factory=lambda: "z9hG4bKfixed")
    key = core.send_request(make_request("OPTIONS", branch=None), BOB, "UDP", 0.0)
    assert key == ClientKey("z9hG4bKfixed", "OPTIONS")
    sent = parse_message(core.pop_outgoing()[0].data)
    assert sent.via.branch == "z9hG4bKfixed"
    assert sent.via.host == "127.0.0.1" and sent.via.port == 5060
    key2 = core.send_request(make_request("OPTIONS", branch="z9hG4bKmine"), BOB, "UDP", 0.0)
    assert key2 == ClientKey("z9hG4bKmine", "OPTIONS")


def test_bare_magic_cookie_branch_is_replaced_on_our_requests() -> None:
    core = SipCore(CONFIG, branch_factory=lambda: "z9hG4bKnew")
    key = core.send_request(make_request("OPTIONS", branch="z9hG4bK"), BOB, "UDP", 0.0)
    assert key.branch == "z9hG4bKnew"


def test_misuse_raises_local_protocol_error() -> None:
    core = SipCore(CONFIG)
    with pytest.raises(LocalProtocolError):
        core.send_request(make_request("ACK"), BOB, "UDP", 0.0)
    core.send_request(make_request("OPTIONS"), BOB, "UDP", 0.0)
    with pytest.raises(LocalProtocolError):
        core.send_request(make_request("OPTIONS"), BOB, "UDP", 0.0)  # same branch twice
    with pytest.raises(LocalProtocolError):
        core.send_response(ClientKey("z9hG4bKtest1", "OPTIONS"), Response(200), 0.0)


def test_response_matches_on_branch_and_cseq_method() -> None:
    d = Driver()
    invite_key = d.core.send_request(make_request("INVITE"), BOB, "UDP", 0.0)
    d.drain()
    invite = d.take_sent()[0].message
    # a 200 for a CANCEL with the INVITE's branch belongs to another transaction
    d.receive(reply(make_request("CANCEL"), 200))
    [stray] = d.take_events()
    assert isinstance(stray, ResponseReceived) and stray.tx is None
    d.receive(reply(make_request("INVITE", branch="z9hG4bKother"), 180))
    [stray] = d.take_events()
    assert stray.tx is None
    d.receive(reply(invite, 180))
    [matched] = d.take_events()
    assert matched.tx == invite_key


def test_request_matching_uses_sent_by_as_well_as_branch() -> None:
    d = Driver()
    d.receive(make_request("OPTIONS", via_host="127.0.0.1:5060"), source=ALICE)
    d.receive(make_request("OPTIONS", via_host="127.0.0.1:5999"), source=ALICE)
    keys = [e.tx for e in d.take_events()]
    assert len(keys) == 2 and keys[0] != keys[1]
    assert all(isinstance(k, ServerKey) for k in keys)
    assert {k.sent_by for k in keys} == {("127.0.0.1", 5060), ("127.0.0.1", 5999)}
    assert d.core.transaction_count == 2


def test_cancel_is_its_own_transaction_and_finds_its_invite() -> None:
    d = Driver()
    d.receive(make_request("INVITE"), source=ALICE)
    d.receive(make_request("CANCEL"), source=ALICE)
    invite_event, cancel_event = d.take_events()
    assert cancel_event.request.method == "CANCEL" and cancel_event.tx != invite_event.tx
    assert d.core.invite_for_cancel(cancel_event.tx) == invite_event.tx
    assert d.core.invite_for_cancel(ServerKey("z9hG4bKx", ("h", 1), "CANCEL")) is None


def test_unparsable_request_gets_a_400_with_the_parse_reason() -> None:
    d = Driver()
    data = (
        b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKbad\r\n"
        b"f: <sip:alice@example.com>;tag=a\r\n"
        b"To: <sip:bob@example.com>\r\n"
        b"Call-ID: bad-cl\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Content-Length: 9999\r\n\r\nv=0\r\n"
    )
    d.receive(data, source=("127.0.0.1", 40000))
    [sent] = d.take_sent()
    response = sent.message
    assert isinstance(response, Response) and response.status == 400
    assert response.reason == "Bad Content-Length"
    assert response.call_id == "bad-cl" and response.to_tag
    assert response.from_tag == "a"
    assert sent.out.destination == ("127.0.0.1", 5062)
    assert d.take_events() == [
        MessageRejected(("127.0.0.1", 40000), "UDP", 400, "Bad Content-Length", True)
    ]
    assert d.core.transaction_count == 0


def test_unparsable_without_via_and_bad_responses_are_dropped() -> None:
    d = Driver()
    d.receive(b"INVITE sip:bob@x SIP/2.0\r\nContent-Length: 99\r\n\r\n")
    d.receive(b"SIP/2.0 200 OK\r\nContent-Length: 99\r\n\r\n")
    d.receive(b"ACK sip:bob@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\nl: 7\r\n\r\n")
    assert d.take_sent() == []
    assert [(e.status, e.replied) for e in d.take_events()] == [(400, False)] * 3


def test_cseq_method_mismatch_is_a_400() -> None:
    d = Driver()
    request = make_request("OPTIONS")
    request.headers.set("CSeq", "1 INVITE")
    d.receive(request, source=ALICE)
    [sent] = d.take_sent()
    assert sent.first_line == "SIP/2.0 400 CSeq method does not match the request method"
    assert d.core.transaction_count == 0


def test_missing_call_id_is_a_400() -> None:
    d = Driver()
    request = make_request("OPTIONS")
    request.headers.remove("Call-ID")
    d.receive(request, source=ALICE)
    [sent] = d.take_sent()
    assert sent.message.status == 400
    [event] = d.take_events()
    assert isinstance(event, MessageRejected) and event.replied


def test_rfc2543_invite_and_ack_match_without_branch() -> None:
    d = Driver()
    invite = make_request("INVITE", branch=None)
    d.receive(invite, source=ALICE)
    [event] = d.take_events()
    assert isinstance(event.tx, LegacyServerKey) and event.tx.cseq == 1
    d.take_sent()
    d.receive(invite, source=ALICE)  # a retransmission: answered, not passed up
    assert d.take_events() == [] and [s.first_line for s in d.take_sent()] == ["SIP/2.0 100 Trying"]
    d.core.send_response(event.tx, reply(event.request, 486, to_tag="t2543"), 0.0)
    d.drain()
    d.receive(make_request("ACK", branch=None, to_tag="wrong"), source=ALICE)
    [unmatched] = d.take_events()
    assert isinstance(unmatched, RequestReceived) and unmatched.tx is None
    d.receive(make_request("ACK", branch=None, to_tag="t2543"), source=ALICE)
    assert d.take_events() == []
    assert d.core.transaction_state(event.tx) is State.CONFIRMED


def test_next_deadline_skips_cancelled_timers() -> None:
    d = Driver()
    key = d.core.send_request(make_request("OPTIONS"), BOB, "UDP", 0.0)
    d.drain()
    assert d.core.next_deadline() == 0.5  # Timer E
    d.receive(reply(d.take_sent()[0].message, 200))
    assert d.core.next_deadline() == 5.0  # Timer K; E and F were cancelled
    [info] = d.core.dump(1.0)
    assert (info.key, info.role, info.method, info.state) == (key, "client", "OPTIONS", "Completed")
    assert info.timers == {"K": 4.0}


def test_send_stateless_queues_without_a_transaction() -> None:
    core = SipCore(CONFIG)
    ack = make_request("ACK", branch="z9hG4bKack", to_tag="bob1")
    core.send_stateless(ack, BOB, "udp")
    [out] = core.pop_outgoing()
    assert out.tx is None and out.transport == "UDP" and out.data == bytes(ack)
    assert core.transaction_count == 0


@pytest.mark.parametrize(
    ("via", "source", "transport", "expected"),
    [
        ("SIP/2.0/UDP 10.0.0.1:5062", ("192.0.2.1", 9), "UDP", ("192.0.2.1", 5062)),
        ("SIP/2.0/UDP 10.0.0.1", ("192.0.2.1", 9), "UDP", ("192.0.2.1", 5060)),
        ("SIP/2.0/UDP 10.0.0.1;rport", ("192.0.2.1", 9), "UDP", ("192.0.2.1", 9)),
        ("SIP/2.0/UDP 10.0.0.1;maddr=239.1.1.1", ("192.0.2.1", 9), "UDP", ("239.1.1.1", 5060)),
        ("SIP/2.0/TCP 10.0.0.1:5062", ("192.0.2.1", 9), "TCP", ("192.0.2.1", 9)),
    ],
)
def test_response_destination_18_2_2(via, source, transport, expected) -> None:
    assert response_destination(Via.parse(via), source, transport) == expected
