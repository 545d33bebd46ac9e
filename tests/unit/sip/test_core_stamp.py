"""Which requests the core stamps with `received`/`rport` (RFC 3261 18.2.1, RFC 3581 4).

The stamp serves the responses (18.2.2): a request that starts a server transaction gets
it; an ACK or a retransmission, which get no response of their own, are matched on the Via
as it came, except from an RFC 2543 peer, whose transaction key holds the stamped top Via.
"""

from __future__ import annotations

from pbx.sip.core import SipCore
from pbx.sip.events import RequestReceived
from pbx.sip.message import parse_message
from pbx.sip.transaction import State
from tests.unit.sip.test_transaction_support import CONFIG, make_request, reply

NATTED = ("203.0.113.7", 40001)  # where the phone's packets really come from
REBOUND = ("203.0.113.7", 40002)  # the same phone after its NAT mapping changed


def _request(method: str, **kw) -> bytes:
    return bytes(make_request(method, via_host="10.0.0.5:5060;rport", **kw))


def test_a_new_invite_is_stamped_and_answered_where_it_came_from() -> None:
    core = SipCore(CONFIG)
    core.receive(_request("INVITE"), NATTED, "UDP", 0.0)
    [event] = core.pop_events()
    via = event.request.via
    assert (via.received, via.rport) == ("203.0.113.7", 40001)
    [out] = core.pop_outgoing()
    assert out.destination == NATTED
    assert "received=203.0.113.7" in parse_message(out.data).headers.get("Via")


def test_a_retransmission_from_a_new_port_is_absorbed_and_answered_at_the_first() -> None:
    core = SipCore(CONFIG)
    core.receive(_request("INVITE"), NATTED, "UDP", 0.0)
    [event] = core.pop_events()
    core.send_response(event.tx, reply(event.request, 180), 0.1)
    core.pop_outgoing()
    core.receive(_request("INVITE"), REBOUND, "UDP", 0.5)
    assert core.pop_events() == []
    [again] = core.pop_outgoing()
    assert again.destination == NATTED  # 17.2.1: the transaction's own destination
    assert parse_message(again.data).via.rport == 40001


def test_an_ack_for_a_2xx_reaches_the_tu_matched_to_the_accepted_invite() -> None:
    core = SipCore(CONFIG)
    core.receive(_request("INVITE"), NATTED, "UDP", 0.0)
    [event] = core.pop_events()
    core.send_response(event.tx, reply(event.request, 200), 0.1)
    core.receive(_request("ACK", to_tag="bob1"), NATTED, "UDP", 0.2)
    [ack] = core.pop_events()
    assert isinstance(ack, RequestReceived) and ack.request.method == "ACK"
    assert ack.tx == event.tx and ack.source == NATTED
    assert core.transaction_state(event.tx) is State.ACCEPTED


def test_an_ack_for_a_failure_ends_in_confirmed_without_reaching_the_tu() -> None:
    core = SipCore(CONFIG)
    core.receive(_request("INVITE"), NATTED, "UDP", 0.0)
    [event] = core.pop_events()
    core.send_response(event.tx, reply(event.request, 407), 0.0)
    core.receive(_request("ACK", to_tag="bob1"), NATTED, "UDP", 0.1)
    assert core.pop_events() == []
    assert core.transaction_state(event.tx) is State.CONFIRMED


def test_an_rfc2543_ack_matches_the_invite_by_its_stamped_via() -> None:
    core = SipCore(CONFIG)
    core.receive(_request("INVITE", branch=None), NATTED, "UDP", 0.0)
    [event] = core.pop_events()
    assert event.request.via.received == "203.0.113.7"
    core.send_response(event.tx, reply(event.request, 486, to_tag="t2543"), 0.0)
    core.receive(_request("ACK", branch=None, to_tag="t2543"), NATTED, "UDP", 0.1)
    assert core.pop_events() == []
    assert core.transaction_state(event.tx) is State.CONFIRMED
