"""A finished non-INVITE server transaction lets its request go (RFC 3261 17.2.2).

In Completed it only answers retransmissions with its last response until Timer J, so it
keeps that response and nothing of the request: a registrar holds 32 s of such
transactions, and their parsed requests were the bulk of what the collector walked.
"""

from __future__ import annotations

import gc

import pytest

from pbx.sip.events import RequestReceived
from pbx.sip.timers import TimerName
from pbx.sip.transaction import State
from pbx.sip.transaction_server import RELEASED_REQUEST
from tests.unit.sip.test_transaction_support import ALICE, Driver, make_request, reply


@pytest.mark.parametrize("status", [200, 401, 486])
def test_final_answer_releases_the_request_and_retransmissions_still_get_it(
    status: int,
) -> None:
    d = Driver()
    request = make_request("REGISTER")
    d.receive(request, source=ALICE)
    [event] = d.take_events()
    assert isinstance(event, RequestReceived)
    tx = d.core._transactions[event.tx]
    assert tx.request is event.request  # still needed until the final answer
    d.core.send_response(event.tx, reply(event.request, status), 0.0)
    d.drain()
    [answer] = d.take_sent()
    assert tx.request is RELEASED_REQUEST
    assert d.core.transaction_state(event.tx) is State.COMPLETED
    d.receive(request, source=ALICE)  # a retransmission: the same answer, nothing for the TU
    [again] = d.take_sent()
    assert again.out.data == answer.out.data and again.first_line.startswith(f"SIP/2.0 {status}")
    assert d.take_events() == []


def test_a_provisional_answer_keeps_the_request() -> None:
    d = Driver()
    d.receive(make_request("OPTIONS"), source=ALICE)
    [event] = d.take_events()
    d.core.send_response(event.tx, reply(event.request, 100), 0.0)
    assert d.core._transactions[event.tx].request is event.request


def test_the_released_request_is_freed_once_the_tu_lets_go() -> None:
    d = Driver()
    d.receive(make_request("REGISTER"), source=ALICE)
    [event] = d.take_events()
    key, request = event.tx, event.request
    d.core.send_response(key, reply(request, 200), 0.0)
    d.drain()
    headers = request.headers
    del event, request
    gc.collect()
    assert not any(getattr(o, "headers", None) is headers for o in gc.get_referrers(headers))
    assert d.core.transaction_state(key) is State.COMPLETED


def test_a_finished_transaction_keeps_only_the_wire_form_of_its_answer() -> None:
    """In Completed only the final response's bytes are kept (and sent again on a
    retransmission): no parsed Response, no To-tag set for an RFC 3261 branch, no
    interval for the wait timer J. Each would be one more object the collector tracks in
    every one of the 32 s of finished transactions a loaded registrar holds."""
    d = Driver()
    request = make_request("REGISTER")
    d.receive(request, source=ALICE)
    [event] = d.take_events()
    tx = d.core._transactions[event.tx]
    d.core.send_response(event.tx, reply(event.request, 200), 0.0)
    d.drain()
    [answer] = d.take_sent()
    assert tx.last_response == answer.out.data
    assert isinstance(tx.last_response, bytes)
    assert tx.to_tags == frozenset()
    assert tx.intervals == {} and not gc.is_tracked(tx.intervals)
    assert list(tx.timers) == [TimerName.J]
    d.receive(request, source=ALICE)
    [again] = d.take_sent()
    assert again.out.data is tx.last_response  # sent as kept, not serialized again


def test_an_invite_transaction_still_backs_off_its_retransmissions() -> None:
    """The retransmission timers keep their intervals (Timer G doubles up to T2)."""
    d = Driver()
    d.receive(make_request("INVITE"), source=ALICE)
    [event] = d.take_events()
    tx = d.core._transactions[event.tx]
    d.core.send_response(event.tx, reply(event.request, 486), 0.0)
    assert tx.intervals == {TimerName.G: d.core.config.t1}
    assert tx.timers[TimerName.G] == d.core.config.t1
