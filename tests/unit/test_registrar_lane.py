"""The REGISTER lane's own duties, sans-IO with a fake clock: the answer kept for 64*T1 and
resent to retransmissions (RFC 3261 17.2.2, 17.2.3), requests it declines, and a request of a
live core transaction left to the core. Equality with the full path's answers is
tests/integration/test_register_lane.py."""

from __future__ import annotations

import gc

import pytest

from pbx import registrar_lane
from pbx.registrar import Registered, Registrar
from pbx.registrar_lane import RegisterLane
from pbx.sip.core import SipCore
from pbx.sip.digest_server import DigestServer
from pbx.sip.timers import TimerConfig
from pbx.store import Store

SOURCE = ("203.0.113.7", 40000)
WALL = 1_700_000_000.0


@pytest.fixture(name="store")
def store_fixture(tmp_path):
    """A store with extension 1001 (also the CANCEL tests' in tests/unit/sip)."""
    with Store(tmp_path / "pbx.db") as store:
        store.add_extension("1001", "secret-1001", "Alice")
        yield store


@pytest.fixture
def lane(store) -> RegisterLane:
    auth = DigestServer(store.realm, store.nonce_secret, algorithms=("MD5",))
    changes: list[Registered] = []
    registrar = Registrar(store, auth, on_change=changes.append)
    return RegisterLane(registrar, SipCore(TimerConfig(t1=0.5)), lambda: WALL)


def datagram(branch: str = "z9hG4bKr1", *, extra: str = "", method: str = "REGISTER") -> bytes:
    return (
        f"{method} sip:pbx.example SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.5:5060;branch={branch};rport\r\n"
        "From: <sip:1001@pbx.example>;tag=f1\r\n"
        "To: <sip:1001@pbx.example>\r\n"
        "Call-ID: c1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:1001@10.0.0.5:5060>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_answer_goes_back_to_the_source_with_the_stamped_via(lane: RegisterLane) -> None:
    answer = lane.handle(datagram(), SOURCE, 100.0)
    assert answer is not None
    assert answer.status == 401 and answer.destination == SOURCE
    assert answer.data.startswith(b"SIP/2.0 401 Unauthorized\r\n")
    assert (
        b"\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKr1;rport=40000;received=203.0.113.7\r\n"
        in answer.data
    )
    assert lane.answered == 1 and len(lane) == 1


def test_retransmission_gets_the_kept_bytes_until_timer_j(lane: RegisterLane) -> None:
    first = lane.handle(datagram(), SOURCE, 100.0)
    again = lane.handle(datagram(), SOURCE, 131.9)
    assert first is not None and again is not None
    assert again.data == first.data and again.status == 0 and again.destination == SOURCE
    assert (lane.answered, lane.resent) == (1, 1)
    late = lane.handle(datagram(), SOURCE, 132.0)  # 64*T1 = 32 s later: a new request
    assert late is not None and late.status == 401 and late.data != first.data
    assert (lane.answered, lane.resent, len(lane)) == (2, 1, 1)


def test_kept_answers_drop_out_of_the_cyclic_collector(lane: RegisterLane) -> None:
    """The 32 s of kept answers must not make every older-generation collection walk them
    (at 2,300 registrations/s they are ~150,000 entries): once collections have seen them
    (a tuple holding a key is let go at the collection after the key's), the collector no
    longer tracks the entries, their keys or the expiry queue's items."""
    for i in range(50):
        lane.handle(datagram(f"z9hG4bKgc{i}"), SOURCE, 100.0)
    gc.collect()
    gc.collect()
    kept = list(lane._answers.items())
    assert len(kept) == 50
    assert not any(gc.is_tracked(entry) or gc.is_tracked(key) for key, entry in kept)
    assert not any(gc.is_tracked(item) for item in lane._expiry)
    assert not any(gc.is_tracked(seen) for seen in lane._datagrams.values())
    again = lane.handle(datagram("z9hG4bKgc7"), SOURCE, 101.0)
    assert again is not None and again.status == 0 and again.destination == SOURCE


def test_a_retransmission_is_answered_without_being_parsed(
    lane: RegisterLane, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = lane.handle(datagram("z9hG4bKrx"), SOURCE, 100.0)
    parsed: list[bytes] = []
    monkeypatch.setattr(registrar_lane, "_understood",
                        lambda data: parsed.append(data))  # fmt: skip
    again = lane.handle(datagram("z9hG4bKrx"), SOURCE, 100.5)
    assert first is not None and again is not None
    assert (again.data, again.destination, again.status) == (first.data, first.destination, 0)
    assert parsed == [] and lane.resent == 1


def test_a_fingerprint_match_of_other_bytes_is_parsed_as_a_new_request(
    lane: RegisterLane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the identical datagram may take the kept answer: a hash collision (forced here)
    with another request of the same length falls through to the parse."""
    monkeypatch.setattr(registrar_lane, "hash", lambda data: 7, raising=False)
    first = lane.handle(datagram("z9hG4bKaa"), SOURCE, 100.0)
    other = lane.handle(datagram("z9hG4bKbb"), SOURCE, 100.1)
    assert first is not None and other is not None
    assert other.status == 401 and other.data != first.data
    assert b"branch=z9hG4bKbb" in other.data
    assert (lane.answered, lane.resent) == (2, 0)
    again = lane.handle(datagram("z9hG4bKbb"), SOURCE, 100.2)
    assert again is not None and again.data == other.data and lane.resent == 1


def test_fingerprints_are_forgotten_with_their_answers(lane: RegisterLane) -> None:
    for i in range(4):
        lane.handle(datagram(f"z9hG4bKf{i}"), SOURCE, 100.0 + i)
    assert len(lane._datagrams) == 4
    lane.handle(datagram("z9hG4bKflast"), SOURCE, 133.5)  # 100 and 101 are past 32 s
    assert len(lane._datagrams) == len(lane) == 3


def test_answers_are_forgotten_after_timer_j(lane: RegisterLane) -> None:
    for i in range(5):
        lane.handle(datagram(f"z9hG4bKn{i}"), SOURCE, 100.0 + i)
    assert len(lane) == 5
    lane.handle(datagram("z9hG4bKlast"), SOURCE, 134.5)  # 100..102 are past 32 s
    assert len(lane) == 3


@pytest.mark.parametrize(
    "data",
    [
        datagram(method="OPTIONS"),
        datagram(extra="Route: <sip:pbx.example;lr>\r\n"),
        datagram(extra="Require: gruu\r\n"),
        datagram(branch="old-2543-branch"),
        datagram().replace(b"Content-Length: 0", b"Content-Length: 9"),
        b"REGISTER sip:pbx.example SIP/2.0\r\nVia: nonsense\r\n\r\n",
    ],
)
def test_declined_requests_are_left_to_the_core(lane: RegisterLane, data: bytes) -> None:
    assert lane.handle(data, SOURCE, 100.0) is None
    assert lane.answered == 0 and len(lane) == 0


def test_request_of_a_live_core_transaction_is_left_to_the_core(lane: RegisterLane) -> None:
    core = lane.core
    core.receive(datagram(), SOURCE, "UDP", 100.0)  # the core made a transaction first
    assert core.transaction_count == 1
    assert lane.handle(datagram(), SOURCE, 100.5) is None
    assert lane.answered == 0
