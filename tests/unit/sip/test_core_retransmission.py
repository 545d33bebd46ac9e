"""A retransmitted UDP request (the same bytes again, RFC 3261 17.1.1.2, 17.1.2.2) reaches
its server transaction without being parsed, and gets what a parsed one would get: the
last response again (17.2.1, 17.2.2), or nothing yet. Anything that is not those same bytes
is parsed as before."""

from __future__ import annotations

import pytest

from pbx.sip import core as core_module
from pbx.sip.events import RequestReceived
from pbx.sip.message import parse_message
from pbx.sip.transaction import State
from tests.unit.sip.test_transaction_support import ALICE, Driver, make_request


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The datagrams the core hands to the parser."""
    seen: list[bytes] = []

    def counting(data: bytes):  # type: ignore[no-untyped-def]
        seen.append(data)
        return parse_message(data)

    monkeypatch.setattr(core_module, "parse_message", counting)
    return seen


def _answer(d: Driver, status: int) -> bytes:
    [event] = [e for e in d.take_events() if isinstance(e, RequestReceived)]
    d.take_sent()
    d.core.send_response(event.tx, event.request.make_response(status, to_tag="b1"), d.now)
    d.drain()
    [sent] = d.take_sent()
    return sent.out.data


def test_an_invite_retransmission_gets_the_last_provisional_unparsed(parses) -> None:
    d = Driver()
    invite = bytes(make_request("INVITE"))
    d.receive(invite, source=ALICE)
    ringing = _answer(d, 180)
    d.receive(invite, source=ALICE)
    assert [s.out.data for s in d.take_sent()] == [ringing]
    assert parses == [invite] and d.core.resent_unparsed == 1
    assert d.take_events() == []  # the TU hears of the INVITE once


def test_a_non_invite_retransmission_gets_the_final_answer_unparsed(parses) -> None:
    d = Driver()
    options = bytes(make_request("OPTIONS"))
    d.receive(options, source=ALICE)
    ok = _answer(d, 200)
    for _ in range(3):
        d.receive(options, source=ALICE)
    assert [s.out.data for s in d.take_sent()] == [ok] * 3
    assert len(parses) == 1 and d.core.resent_unparsed == 3


def test_other_bytes_of_the_same_transaction_are_parsed(parses) -> None:
    d = Driver()
    d.receive(make_request("OPTIONS"), source=ALICE)
    _answer(d, 200)
    spaced = bytes(make_request("OPTIONS")).replace(b"CSeq: 1", b"CSeq:  1")
    d.receive(spaced, source=ALICE)
    assert len(parses) == 2 and d.core.resent_unparsed == 0
    assert len(d.take_sent()) == 1  # the same transaction (same branch), answered again


def test_a_fingerprint_naming_other_bytes_is_not_trusted(parses) -> None:
    d = Driver()
    options = bytes(make_request("OPTIONS"))
    d.receive(options, source=ALICE)
    _answer(d, 200)
    other = bytes(make_request("OPTIONS", branch="z9hG4bKother", call_id="other@x"))
    [(key, _)] = d.core._fingerprints.values()
    d.core._fingerprints[hash(other)] = (key, len(other))  # as a hash collision would
    d.receive(other, source=ALICE)
    assert d.core.resent_unparsed == 0 and parses[-1] == other  # no branch match: parsed
    [event] = d.take_events()
    assert isinstance(event, RequestReceived) and event.tx.branch == "z9hG4bKother"


def test_tcp_and_rfc2543_requests_are_always_parsed(parses) -> None:
    d = Driver()
    over_tcp = bytes(make_request("OPTIONS", transport="TCP"))
    d.receive(over_tcp, source=ALICE, transport="TCP")
    legacy = bytes(make_request("OPTIONS", branch=None, call_id="legacy@x"))
    d.receive(legacy, source=ALICE)
    d.receive(legacy, source=ALICE)
    assert d.core._fingerprints == {} and d.core.resent_unparsed == 0
    assert len(parses) == 3


def test_fingerprints_end_with_their_transactions() -> None:
    d = Driver()
    for n in range(5):
        d.receive(make_request("OPTIONS", branch=f"z9hG4bKn{n}", call_id=f"c{n}"), source=ALICE)
        _answer(d, 200)
    assert len(d.core._fingerprints) == 5
    d.run_until(d.now + 64 * d.core.config.t1 + 1)  # Timer J
    assert d.core.transaction_count == 0
    assert d.core._fingerprints == {} and d.core._fingerprint_of == {}


def test_a_retransmission_before_any_answer_changes_nothing(parses) -> None:
    d = Driver()
    options = bytes(make_request("OPTIONS"))
    d.receive(options, source=ALICE)
    d.take_events()
    d.receive(options, source=ALICE)  # Trying: absorbed (17.2.2)
    assert d.take_sent() == [] and d.take_events() == []
    assert d.core.resent_unparsed == 1
    [tx] = d.core._transactions.values()
    assert tx.state is State.TRYING
