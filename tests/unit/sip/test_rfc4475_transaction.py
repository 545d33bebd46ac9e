"""RFC 4475 section 3.2.1, badbranch.dat: a Via branch that is only the magic cookie.

"z9hG4bK" alone claims RFC 3261 transaction identifiers but carries none, so
the request must be matched the RFC 2543 way (RFC 3261 17.2.3: Request-URI,
To tag, From tag, Call-ID, CSeq and top Via), never on the branch alone.
"""

from __future__ import annotations

from pathlib import Path

from pbx.sip.events import MessageRejected, RequestReceived, ResponseReceived
from pbx.sip.transaction import LegacyServerKey, State, is_rfc3261_branch
from tests.unit.sip.test_transaction_support import Driver, reply

SOURCE = ("192.0.2.1", 5060)


def badbranch(rfc4475_dir: Path) -> bytes:
    return (rfc4475_dir / "badbranch.dat").read_bytes()


def test_bare_cookie_is_not_an_rfc3261_branch() -> None:
    assert not is_rfc3261_branch("z9hG4bK")
    assert not is_rfc3261_branch("1234")
    assert not is_rfc3261_branch(None)
    assert is_rfc3261_branch("z9hG4bK1")


def test_badbranch_makes_a_transaction_keyed_the_rfc2543_way(rfc4475_dir: Path) -> None:
    d = Driver()
    d.receive(badbranch(rfc4475_dir), source=SOURCE)
    [event] = d.take_events()
    assert isinstance(event, RequestReceived) and event.request.method == "OPTIONS"
    key = event.tx
    assert isinstance(key, LegacyServerKey)
    assert key.call_id == "badbranch.sadonfo23i420jv0as0derf3j3n"
    assert (key.cseq, key.method, key.from_tag, key.to_tag) == (8, "OPTIONS", "33242", None)
    assert key.request_uri == "sip:user@example.com"
    assert d.core.transaction_state(key) is State.TRYING


def test_badbranch_retransmission_is_absorbed_then_answered(rfc4475_dir: Path) -> None:
    d = Driver()
    data = badbranch(rfc4475_dir)
    d.receive(data, source=SOURCE)
    [event] = d.take_events()
    d.receive(data, source=SOURCE)
    assert d.take_events() == [] and d.take_sent() == []
    d.core.send_response(event.tx, reply(event.request, 200), 0.0)
    d.drain()
    d.receive(data, source=SOURCE)
    sent = d.take_sent()
    assert [s.first_line for s in sent] == ["SIP/2.0 200 OK"] * 2
    assert sent[0].out.data == sent[1].out.data
    assert sent[0].out.destination == ("192.0.2.1", 5060)
    assert d.core.transaction_count == 1


def test_same_bare_branch_with_another_call_id_is_another_transaction(rfc4475_dir: Path) -> None:
    d = Driver()
    data = badbranch(rfc4475_dir)
    d.receive(data, source=SOURCE)
    d.receive(data.replace(b"badbranch.sadonfo", b"otherbranch.sadon"), source=SOURCE)
    d.receive(data.replace(b"CSeq: 8 OPTIONS", b"CSeq: 9 OPTIONS"), source=SOURCE)
    events = d.take_events()
    assert len(events) == 3 and len({e.tx for e in events}) == 3
    assert d.core.transaction_count == 3


def test_every_torture_message_yields_exactly_one_event(rfc4475_dir: Path) -> None:
    """No message of the corpus crashes the core; each is passed up or rejected once."""
    files = sorted(rfc4475_dir.glob("*.dat"))
    assert len(files) == 49
    for path in files:
        d = Driver()
        d.receive(path.read_bytes(), source=SOURCE)
        events = d.take_events()
        assert len(events) == 1, path.name
        [event] = events
        sent = d.take_sent()
        if isinstance(event, MessageRejected):
            assert 400 <= event.status <= 599, path.name
            assert len(sent) == int(event.replied), path.name
            for s in sent:
                assert s.message.status == event.status and s.message.reason == event.reason
        else:
            assert isinstance(event, RequestReceived | ResponseReceived), path.name


def test_clerr_gets_a_400_naming_the_problem(rfc4475_dir: Path) -> None:
    d = Driver()
    d.receive((rfc4475_dir / "clerr.dat").read_bytes(), source=SOURCE)
    [event] = d.take_events()
    assert isinstance(event, MessageRejected) and event.replied and event.status == 400
    [sent] = d.take_sent()
    response = sent.message
    assert response.status == 400 and response.reason == event.reason
    assert "Content-Length" in response.reason
    assert response.call_id == "clerr.0ha0isndaksdjweiafasdk3"
