"""Transaction-layer throughput on a fake clock: complete ladders per second.

A ladder is the whole life of the transactions of one request between two
SipCores: the client core builds and serializes the request, the server core
parses and matches it, the TU answers, the client core parses the response,
and fake time moves past the wait timers (J/K, or L/M for INVITE) so both
transaction tables are empty again. Wall time covers parsing, serializing,
matching and timers; no sockets.

Goals come from what the PBX needs, not from what was measured: a B2BUA call
costs two INVITE ladders and two BYE ladders, and a desktop PBX with a few
dozen phones should set up 50 calls a second with room to spare, so 250
INVITE and 1,000 non-INVITE ladders a second (REGISTER refreshes and OPTIONS
pings included) on one core.
"""

from __future__ import annotations

import time

from pbx.sip.core import SipCore
from pbx.sip.events import RequestReceived
from pbx.sip.message import Request
from pbx.sip.timers import TimerConfig
from tests.bench.rows import Row

CLIENT = ("127.0.0.1", 5060)
SERVER = ("127.0.0.1", 5070)
COMMAND = ".venv/bin/python -m tests.bench transaction"


def _request(method: str, n: int) -> Request:
    return Request(
        method,
        "sip:bob@127.0.0.1:5070",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5060"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:alice@example.com>;tag=a{n}"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", f"bench-{n}@127.0.0.1"),
            ("CSeq", f"1 {method}"),
        ],
    )


def _deliver(src: SipCore, dst: SipCore, source: tuple[str, int], now: float) -> None:
    for out in src.pop_outgoing():
        dst.receive(out.data, source, out.transport, now)


def _answer(server: SipCore, statuses: tuple[int, ...], now: float) -> None:
    for event in server.pop_events():
        if isinstance(event, RequestReceived) and event.tx is not None:
            for status in statuses:
                server.send_response(event.tx, event.request.make_response(status, to_tag="b"), now)


def non_invite_ladder(client: SipCore, server: SipCore, n: int, now: float) -> None:
    client.send_request(_request("OPTIONS", n), SERVER, "UDP", now)
    _deliver(client, server, CLIENT, now)
    _answer(server, (200,), now)
    _deliver(server, client, SERVER, now)
    client.pop_events()
    later = now + 64 * client.config.t1
    client.handle_timers(later)
    server.handle_timers(later)


def invite_ladder(client: SipCore, server: SipCore, n: int, now: float) -> None:
    client.send_request(_request("INVITE", n), SERVER, "UDP", now)
    _deliver(client, server, CLIENT, now)
    _answer(server, (180, 200), now)
    _deliver(server, client, SERVER, now)
    for event in client.pop_events():
        response = getattr(event, "response", None)
        if response is not None and response.status == 200:
            ack = _request("ACK", n)
            ack.headers.set("To", response.headers.get("To") or "")
            ack.headers.set("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack{n}")
            client.send_stateless(ack, SERVER, "UDP")
    _deliver(client, server, CLIENT, now)
    server.pop_events()
    later = now + 64 * client.config.t1
    client.handle_timers(later)
    server.handle_timers(later)


def _measure(ladder, seconds: float, max_ladders: int) -> tuple[float, int, int]:
    client, server = SipCore(TimerConfig()), SipCore(TimerConfig())
    now, n = 0.0, 0
    started = time.perf_counter()
    deadline = started + seconds
    while n < max_ladders and time.perf_counter() < deadline:
        ladder(client, server, n, now)
        n += 1
        now += 100.0
    elapsed = time.perf_counter() - started
    leaked = client.transaction_count + server.transaction_count
    return n / elapsed, n, leaked


def _row(name: str, rate: float, n: int, leaked: int, goal: float) -> Row:
    return Row(
        name=name,
        value=rate,
        unit="ladders/s",
        goal=f">= {goal:,.0f} ladders/s, 0 transactions left",
        met=rate >= goal and leaked == 0,
        note=f"{n} ladders, {leaked} transactions left, fake clock, UDP timers",
        command=COMMAND,
    )


def timer_firings(live: int, seconds: float) -> tuple[float, int, int]:
    """`live` unanswered OPTIONS at once: every Timer E retransmission and Timer F, per second."""
    core = SipCore(TimerConfig())
    for n in range(live):
        core.send_request(_request("OPTIONS", n), SERVER, "UDP", n * 1e-5)
    assert len(core.pop_outgoing()) == live  # created within 0.1 s: no timer fired yet
    fired = 0
    started = time.perf_counter()
    while (deadline := core.next_deadline()) is not None:
        if time.perf_counter() - started > seconds:
            break
        core.handle_timers(deadline)
        fired += len(core.pop_outgoing()) + len(core.pop_events())
    elapsed = time.perf_counter() - started
    return fired / elapsed, fired, core.transaction_count


def run(quick: bool) -> list[Row]:
    seconds = 0.5 if quick else 3.0
    rate, n, leaked = _measure(non_invite_ladder, seconds, 1_000_000)
    rows = [_row("non-INVITE ladder (OPTIONS -> 200, J/K)", rate, n, leaked, 1_000)]
    rate, n, leaked = _measure(invite_ladder, seconds, 1_000_000)
    rows.append(_row("INVITE ladder (100, 180, 200, ACK, L/M)", rate, n, leaked, 250))
    live = 2_000 if quick else 10_000
    rate, fired, left = timer_firings(live, seconds * 4)
    rows.append(
        Row(
            name=f"timer firings with {live:,} live transactions (E retransmit, F timeout)",
            value=rate,
            unit="firings/s",
            goal=">= 10,000 firings/s, 0 transactions left",
            met=rate >= 10_000 and left == 0,
            note=f"{fired:,} firings (10 resends + Timer F each), {left} left, fake clock",
            command=COMMAND,
        )
    )
    return rows
