"""Two SipCores over a lossy, duplicating UDP link on a fake clock (RFC 3261 17.1, 17.2).

Whatever the network drops or repeats, each request reaches the server TU at
most once, the client TU learns exactly one outcome (a final response or a
timeout), the ACK of a failure stops Timer G, and both transaction tables end
empty with no timer left: the no-leak guarantee the PBX relies on.
"""

from __future__ import annotations

import heapq
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip.core import SipCore
from pbx.sip.events import RequestReceived, ResponseReceived, TransactionTimedOut
from pbx.sip.message import parse_message
from tests.unit.sip.test_transaction_support import ALICE, BOB, CONFIG, make_request

LATENCY = 0.01
END = 300.0


class Link:
    """Delivers datagrams after LATENCY, dropping or doubling them as the fate list says."""

    def __init__(self, fates: list[str]) -> None:
        self.fates = iter(fates)
        self.queue: list[tuple[float, int, SipCore, bytes, tuple[str, int]]] = []
        self.seq = itertools.count()
        self.log: list[tuple[str, str]] = []

    def carry(self, src: SipCore, dst: SipCore, source: tuple[str, int], now: float) -> None:
        for out in src.pop_outgoing():
            fate = next(self.fates, "ok")
            first, second = out.data.split(b" ", 2)[:2]
            self.log.append((fate, (second if first == b"SIP/2.0" else first).decode()))
            copies = {"lose": 0, "ok": 1, "twice": 2}[fate]
            for _ in range(copies):
                heapq.heappush(self.queue, (now + LATENCY, next(self.seq), dst, out.data, source))


LINKS: list[Link] = []


def simulate(method: str, status: int, fates: list[str]) -> tuple[list, list, SipCore, SipCore]:
    client, server = SipCore(CONFIG), SipCore(CONFIG)
    link = Link(fates)
    LINKS[:] = [link]
    client_events: list = []
    server_events: list = []
    key = client.send_request(make_request(method), BOB, "UDP", 0.0)
    now = 0.0
    for _ in range(5_000):
        link.carry(client, server, ALICE, now)
        link.carry(server, client, BOB, now)
        for event in server.pop_events():
            server_events.append(event)
            if isinstance(event, RequestReceived) and event.tx is not None:
                answer = event.request.make_response(status, to_tag="uas")
                server.send_response(event.tx, answer, now)
        client_events += client.pop_events()
        link.carry(server, client, BOB, now)
        times = [t for t in (client.next_deadline(), server.next_deadline()) if t is not None]
        if link.queue:
            times.append(link.queue[0][0])
        if not times:
            break
        now = min(times)
        assert now <= END, "the ladder did not settle"
        while link.queue and link.queue[0][0] <= now:
            _, _, dst, data, source = heapq.heappop(link.queue)
            dst.receive(data, source, "UDP", now)
        client.handle_timers(now)
        server.handle_timers(now)
    assert all(getattr(e, "tx", key) in (key, None) for e in client_events)
    return client_events, server_events, client, server


FATES = st.lists(st.sampled_from(["ok", "ok", "lose", "twice"]), max_size=30)


@settings(max_examples=60, deadline=None)
@given(fates=FATES, status=st.sampled_from([200, 404]))
def test_non_invite_over_a_lossy_link(fates: list[str], status: int) -> None:
    client_events, server_events, client, server = simulate("OPTIONS", status, fates)
    new_requests = [e for e in server_events if isinstance(e, RequestReceived)]
    assert len(new_requests) <= 1
    finals = [e for e in client_events if isinstance(e, ResponseReceived)]
    timeouts = [e for e in client_events if isinstance(e, TransactionTimedOut)]
    assert len(finals) + len(timeouts) == 1
    if finals:
        assert finals[0].response.status == status and len(new_requests) == 1
    assert client.transaction_count == server.transaction_count == 0
    assert client.next_deadline() is None and server.next_deadline() is None


@settings(max_examples=60, deadline=None)
@given(fates=FATES, status=st.sampled_from([486, 603]))
def test_invite_failure_over_a_lossy_link(fates: list[str], status: int) -> None:
    client_events, server_events, client, server = simulate("INVITE", status, fates)
    assert len([e for e in server_events if isinstance(e, RequestReceived)]) <= 1
    assert all(e.tx is not None for e in server_events if isinstance(e, RequestReceived))
    outcomes = [
        e
        for e in client_events
        if isinstance(e, TransactionTimedOut)
        or (isinstance(e, ResponseReceived) and e.tx is not None and e.response.status >= 300)
    ]
    assert len(outcomes) == 1
    assert client.transaction_count == server.transaction_count == 0


def test_a_failure_resent_after_timer_b_reaches_the_tu_as_a_stray() -> None:
    # The 7th INVITE (sent at 31.5 s) gets through, its 100 and first 486 are lost: Timer B
    # ends the transaction at 32 s with one outcome, a timeout. The 486s the server then
    # resends (Timer G, until Timer H) match no transaction: they reach the TU with tx None
    # (RFC 3261 18.1.2), which is no second outcome of the transaction.
    fates = ["lose"] * 6 + ["ok", "lose", "lose"]
    client_events, _, client, server = simulate("INVITE", 486, fates)
    assert isinstance(client_events[0], TransactionTimedOut) and client_events[0].tx is not None
    strays = client_events[1:]
    assert strays and all(
        isinstance(e, ResponseReceived) and e.tx is None and e.response.status == 486
        for e in strays
    )
    assert client.transaction_count == server.transaction_count == 0


def test_lost_ack_is_recovered_by_timer_g() -> None:
    # INVITE ok, 100 ok, 486 ok, first ACK lost; the 486 resent by Timer G gets the ACK again
    fates = ["ok", "ok", "ok", "lose"]
    client_events, server_events, client, server = simulate("INVITE", 486, fates)
    statuses = [e.response.status for e in client_events if isinstance(e, ResponseReceived)]
    assert statuses == [100, 486]
    # (fate, method or status) of every datagram: the second 486 came from Timer G
    assert LINKS[0].log == [
        ("ok", "INVITE"),
        ("ok", "100"),
        ("ok", "486"),
        ("lose", "ACK"),
        ("ok", "486"),
        ("ok", "ACK"),
    ]
    assert not any(isinstance(e, TransactionTimedOut) for e in server_events)


def test_everything_lost_times_out_with_timer_f() -> None:
    client_events, server_events, _, _ = simulate("OPTIONS", 200, ["lose"] * 30)
    assert server_events == []
    assert [type(e) for e in client_events] == [TransactionTimedOut]


def test_parse_of_retransmissions_is_byte_identical() -> None:
    client = SipCore(CONFIG)
    client.send_request(make_request("OPTIONS"), BOB, "UDP", 0.0)
    client.handle_timers(0.5)
    first, second = client.pop_outgoing()
    assert first.data == second.data
    assert parse_message(first.data).via.branch == "z9hG4bKtest1"
