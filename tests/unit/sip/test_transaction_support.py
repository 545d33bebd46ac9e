"""Builders and a fake-clock driver shared by the transaction and core tests (no tests here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pbx.net.clock import FakeClock
from pbx.sip.core import Outgoing, SipCore
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.timers import TimerConfig

ALICE = ("127.0.0.1", 5060)
BOB = ("127.0.0.1", 5070)
T1, T2, T4 = 0.5, 4.0, 5.0
CONFIG = TimerConfig(t1=T1, t2=T2, t4=T4)


def make_request(
    method: str = "OPTIONS",
    *,
    branch: str | None = "z9hG4bKtest1",
    cseq: int = 1,
    call_id: str = "call-1@127.0.0.1",
    to_tag: str | None = None,
    via_host: str = "127.0.0.1:5060",
    transport: str = "UDP",
    routes: Iterable[str] = (),
    uri: str = "sip:bob@127.0.0.1:5070",
) -> Request:
    via = f"SIP/2.0/{transport} {via_host}" + (f";branch={branch}" if branch else "")
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    headers = [("Via", via)]
    headers += [("Route", route) for route in routes]
    headers += [
        ("Max-Forwards", "70"),
        ("From", '"Alice" <sip:alice@example.com>;tag=alice1'),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
    ]
    return Request(method, uri, headers)


def reply(request: Request, status: int, to_tag: str | None = "bob1") -> Response:
    return request.make_response(status, to_tag=to_tag if status > 100 else None)


def wire(message: Request | Response) -> bytes:
    return bytes(message)


@dataclass
class Sent:
    """One message a core queued, with the fake time it was queued at."""

    at: float
    out: Outgoing

    @property
    def message(self) -> Request | Response:
        return parse_message(self.out.data)

    @property
    def first_line(self) -> str:
        return self.out.data.split(b"\r\n", 1)[0].decode()


@dataclass
class Driver:
    """A SipCore on a FakeClock that records everything it sends and reports."""

    core: SipCore = field(default_factory=lambda: SipCore(CONFIG))
    clock: FakeClock = field(default_factory=FakeClock)
    sent: list[Sent] = field(default_factory=list)
    events: list[object] = field(default_factory=list)

    @property
    def now(self) -> float:
        return self.clock.now()

    def drain(self) -> None:
        self.sent += [Sent(self.now, out) for out in self.core.pop_outgoing()]
        self.events += self.core.pop_events()

    def receive(self, message: Request | Response | bytes, source=BOB, transport="UDP") -> None:
        data = message if isinstance(message, bytes) else bytes(message)
        self.core.receive(data, source, transport, self.now)
        self.drain()

    def run_until(self, until: float, limit: int = 10_000) -> None:
        """Fire every timer up to `until` at its own deadline (bounded by `limit` firings)."""
        for _ in range(limit):
            deadline = self.core.next_deadline()
            if deadline is None or deadline > until:
                break
            self.clock.set(max(deadline, self.now))
            self.core.handle_timers(self.now)
            self.drain()
        self.clock.set(max(until, self.now))

    def take_sent(self) -> list[Sent]:
        sent, self.sent = self.sent, []
        return sent

    def take_events(self) -> list[object]:
        events, self.events = self.events, []
        return events
