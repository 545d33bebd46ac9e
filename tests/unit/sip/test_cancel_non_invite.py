"""CANCEL matching at the UAS (RFC 3261 9.2): a CANCEL names the server transaction of any
method with its branch and sent-by (17.2.3 without the method), also a REGISTER the lane
answered and still keeps; and `awaits_final`, which the shell asks before answering 500 for
a TU that raised (21.5.1). Sans-IO, fake clock."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from pbx.registrar import Registrar
from pbx.registrar_lane import RegisterLane
from pbx.sip.core import MAX_SERVER_METHODS, SipCore
from pbx.sip.digest_server import DigestServer
from pbx.sip.events import RequestReceived
from pbx.sip.message import Request, Response
from pbx.sip.transaction import LegacyServerKey, ServerKey, State, TransactionKey
from pbx.store import Store
from tests.unit.sip.test_transaction_support import ALICE, CONFIG, Driver, make_request, reply
from tests.unit.test_registrar_lane import store_fixture  # noqa: F401  (the `store` fixture)

SENT_BY = ("127.0.0.1", 5060)


class _Received(NamedTuple):
    request: Request
    tx: TransactionKey


def _received(d: Driver, method: str, **kwargs: Any) -> _Received:
    d.receive(make_request(method, **kwargs), source=ALICE)
    [event] = [e for e in d.take_events() if isinstance(e, RequestReceived)]
    assert event.request.method == method and event.tx is not None
    return _Received(event.request, event.tx)


@pytest.mark.parametrize("method", ["REGISTER", "OPTIONS", "MESSAGE", "FOO"])
def test_cancel_names_a_completed_non_invite_transaction(method: str) -> None:
    d = Driver()
    request = _received(d, method)
    d.core.send_response(request.tx, reply(request.request, 200), d.now)
    assert d.core.transaction_state(request.tx) is State.COMPLETED
    d.clock.advance(5.0)
    cancel = _received(d, "CANCEL")
    assert d.core.cancel_target(cancel.tx, d.now) == ServerKey("z9hG4bKtest1", SENT_BY, method)
    assert d.core.invite_for_cancel(cancel.tx) is None
    # nothing else changed: the request's transaction still answers its retransmission
    assert d.core.transaction_state(request.tx) is State.COMPLETED
    d.take_sent()
    d.receive(make_request(method), source=ALICE)
    [again] = d.take_sent()
    assert again.first_line == "SIP/2.0 200 OK" and d.take_events() == []


def test_cancel_names_a_non_invite_still_waiting_for_its_answer() -> None:
    d = Driver()
    options = _received(d, "OPTIONS")
    cancel = _received(d, "CANCEL")
    assert d.core.cancel_target(cancel.tx, d.now) == options.tx
    assert d.core.transaction_state(options.tx) is State.TRYING


def test_cancel_of_an_invite_still_names_the_invite() -> None:
    d = Driver()
    invite = _received(d, "INVITE")
    cancel = _received(d, "CANCEL")
    assert d.core.cancel_target(cancel.tx, d.now) == invite.tx
    assert invite.tx == ServerKey("z9hG4bKtest1", SENT_BY, "INVITE")


@pytest.mark.parametrize(
    "cancel",
    [
        make_request("CANCEL", branch="z9hG4bKother"),  # another branch
        make_request("CANCEL", via_host="127.0.0.1:5999"),  # another sent-by
    ],
)
def test_cancel_of_no_transaction_names_nothing(cancel: object) -> None:
    d = Driver()
    register = _received(d, "REGISTER")
    d.core.send_response(register.tx, reply(register.request, 200), d.now)
    d.receive(cancel, source=ALICE)
    [event] = d.take_events()
    assert isinstance(event, RequestReceived) and event.request.method == "CANCEL"
    assert d.core.cancel_target(event.tx, d.now) is None


def test_cancel_after_timer_j_names_nothing() -> None:
    d = Driver()
    register = _received(d, "REGISTER")
    d.core.send_response(register.tx, reply(register.request, 200), d.now)
    d.run_until(64 * CONFIG.t1 + 0.01)
    assert d.core.transaction_count == 0
    cancel = _received(d, "CANCEL")
    assert d.core.cancel_target(cancel.tx, d.now) is None


def test_cancel_after_a_register_over_tcp_names_nothing() -> None:
    """Timer J is zero on a reliable transport (17.2.2): the transaction is gone at once."""
    d = Driver()
    d.receive(make_request("REGISTER", transport="TCP"), source=ALICE, transport="TCP")
    [register] = d.take_events()
    d.core.send_response(register.tx, reply(register.request, 200), d.now)
    d.receive(make_request("CANCEL", transport="TCP"), source=ALICE, transport="TCP")
    [cancel] = d.take_events()
    assert d.core.cancel_target(cancel.tx, d.now) is None


def test_cancel_from_an_rfc2543_peer_names_its_register() -> None:
    d = Driver()
    register = _received(d, "REGISTER", branch=None)
    assert isinstance(register.tx, LegacyServerKey)
    cancel = _received(d, "CANCEL", branch=None)
    assert d.core.cancel_target(cancel.tx, d.now) == register.tx


def test_invented_methods_are_remembered_up_to_a_bound() -> None:
    d = Driver()
    for n in range(MAX_SERVER_METHODS + 5):
        _received(d, f"X{n}", branch=f"z9hG4bKm{n}")
    last = MAX_SERVER_METHODS + 4
    cancel = _received(d, "CANCEL", branch=f"z9hG4bKm{last}")
    assert d.core.cancel_target(cancel.tx, d.now) is None  # past the bound: not looked for
    cancel = _received(d, "CANCEL", branch="z9hG4bKm3")
    assert d.core.cancel_target(cancel.tx, d.now) == ServerKey("z9hG4bKm3", SENT_BY, "X3")


def test_awaits_final_until_the_final_response() -> None:
    d = Driver()
    invite = _received(d, "INVITE")
    options = _received(d, "OPTIONS", branch="z9hG4bKopt")
    assert d.core.awaits_final(invite.tx) and d.core.awaits_final(options.tx)
    d.core.send_response(invite.tx, reply(invite.request, 180), d.now)
    assert d.core.awaits_final(invite.tx)
    d.core.send_response(invite.tx, reply(invite.request, 486), d.now)
    d.core.send_response(options.tx, reply(options.request, 200), d.now)
    assert not d.core.awaits_final(invite.tx) and not d.core.awaits_final(options.tx)
    assert not d.core.awaits_final(ServerKey("z9hG4bKnone", SENT_BY, "OPTIONS"))


# ------------------------------------------------------------------ the REGISTER lane

LANE_SOURCE = ("203.0.113.7", 40000)
WALL = 1_700_000_000.0


class _Broken(Registrar):
    """Fails in both ways into the registrar: `handle` and the challenges the lane reads for
    a first REGISTER."""

    failing = True

    def handle(self, *args: Any, **kwargs: Any) -> Response:
        if self.failing:
            raise RuntimeError("store is gone")
        return super().handle(*args, **kwargs)

    def challenges(self, now: float) -> list[str]:
        if self.failing:
            raise RuntimeError("store is gone")
        return super().challenges(now)


def _lane(store: Store, registrar_cls: type[Registrar] = Registrar) -> RegisterLane:
    auth = DigestServer(store.realm, store.nonce_secret, algorithms=("MD5",))
    return RegisterLane(registrar_cls(store, auth), SipCore(CONFIG), lambda: WALL)


def _datagram(method: str, branch: str = "z9hG4bKr1", host: str = "10.0.0.5") -> bytes:
    return (
        f"{method} sip:pbx.example SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:5060;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:1001@pbx.example>;tag=f1\r\n"
        "To: <sip:1001@pbx.example>\r\n"
        "Call-ID: c1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Contact: <sip:1001@10.0.0.5:5060>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _cancel_key(lane: RegisterLane, data: bytes, now: float) -> object:
    lane.core.receive(data, LANE_SOURCE, "UDP", now)
    [event] = lane.core.pop_events()
    assert isinstance(event, RequestReceived) and event.request.method == "CANCEL"
    return lane.core.cancel_target(event.tx, now)


def test_cancel_names_a_register_the_lane_keeps(store: Store) -> None:
    lane = _lane(store)
    answer = lane.handle(_datagram("REGISTER"), LANE_SOURCE, 100.0)
    assert answer is not None and answer.status == 401
    assert lane.core.transaction_count == 0  # the lane made no core transaction
    kept = _cancel_key(lane, _datagram("CANCEL"), 110.0)
    assert kept == ServerKey("z9hG4bKr1", ("10.0.0.5", 5060), "REGISTER")
    again = lane.handle(_datagram("REGISTER"), LANE_SOURCE, 111.0)  # unchanged: resent
    assert again is not None and again.data == answer.data and again.status == 0


@pytest.mark.parametrize(
    ("data", "now"),
    [
        (_datagram("CANCEL", branch="z9hG4bKr2"), 110.0),  # another branch
        (_datagram("CANCEL", host="10.0.0.6"), 110.0),  # another sent-by
        (_datagram("CANCEL"), 100.0 + 64 * CONFIG.t1),  # the answer is no longer kept
    ],
)
def test_cancel_names_no_register_the_lane_does_not_keep(
    store: Store, data: bytes, now: float
) -> None:
    lane = _lane(store)
    assert lane.handle(_datagram("REGISTER"), LANE_SOURCE, 100.0) is not None
    assert _cancel_key(lane, data, now) is None


def test_registrar_failure_is_answered_500_and_kept(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    lane = _lane(store, _Broken)
    first = lane.handle(_datagram("REGISTER"), LANE_SOURCE, 100.0)
    assert first is not None and first.status == 500 and first.destination == LANE_SOURCE
    assert first.data.startswith(b"SIP/2.0 500 Server Internal Error\r\n")
    assert b"\r\nCall-ID: c1\r\n" in first.data and b"\r\nCSeq: 1 REGISTER\r\n" in first.data
    assert b"\r\nTo: <sip:1001@pbx.example>;tag=" in first.data
    assert "store is gone" in caplog.text and "Traceback" in caplog.text
    again = lane.handle(_datagram("REGISTER"), LANE_SOURCE, 101.0)
    assert again is not None and again.data == first.data and again.status == 0
    assert isinstance(lane.registrar, _Broken)
    lane.registrar.failing = False
    nxt = lane.handle(_datagram("REGISTER", branch="z9hG4bKr2"), LANE_SOURCE, 102.0)
    assert nxt is not None and nxt.status == 401
    assert (lane.answered, lane.resent) == (2, 1)
