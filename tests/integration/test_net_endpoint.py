"""SipEndpoint: listeners + the real SipCore + the timer service, on 127.0.0.1.

The handler here is a tiny transaction user: it answers OPTIONS with 200 and
records every event, which is what the registrar/B2BUA layer will do.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from pbx.net.transport import Listen, SipEndpoint, stamped_bytes
from pbx.sip.core import SipCore
from pbx.sip.events import Event, RequestReceived, TransactionTimedOut
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.timers import TimerConfig
from pbx.sip.transport import NextHop
from tests.integration.test_net_transport import WAIT, options

pytestmark = [
    pytest.mark.integration,
    # Overriding event_loop_policy is how one module runs on both loops; the
    # hook pytest-asyncio prefers must live in a conftest.py.
    pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy" fixture'),
]


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Every test runs on asyncio's loop and on uvloop (what `deskpbx serve` uses)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop not installed (Windows)")
        return uvloop.EventLoopPolicy()  # type: ignore[no-any-return]
    return asyncio.DefaultEventLoopPolicy()


class Tu:
    """Records events; answers requests with 200 through the endpoint."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()
        self.endpoint: SipEndpoint | None = None

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()
        if isinstance(event, RequestReceived) and event.tx is not None:
            assert self.endpoint is not None
            response = event.request.make_response(200, to_tag="tu1")
            self.endpoint.send_response(event.tx, response)

    async def wait_for(self, kind: type, count: int = 1) -> list[Event]:
        async def until() -> list[Event]:
            while True:
                found = [e for e in self.events if isinstance(e, kind)]
                if len(found) >= count:
                    return found
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(until(), WAIT)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[SipEndpoint, Tu]]:
    tu = Tu()
    core = SipCore(TimerConfig(t1=0.05, t2=0.4, t4=0.5, d_unreliable=0.5))
    ep = SipEndpoint(asyncio.get_running_loop(), core, tu, [Listen("127.0.0.1", 0)])
    tu.endpoint = ep
    await ep.start()
    yield ep, tu
    await ep.close()


async def recv(sock: socket.socket) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65535), WAIT)


async def test_request_is_stamped_answered_and_retransmission_absorbed(
    endpoint: tuple[SipEndpoint, Tu],
) -> None:
    ep, tu = endpoint
    port = ep.addresses["UDP"][0][1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        client_port = sock.getsockname()[1]
        request = options("10.1.1.1", 5060, "UDP")
        sock.sendto(request, ("127.0.0.1", port))
        first = parse_message(await recv(sock))
        sock.sendto(request, ("127.0.0.1", port))  # a retransmission
        second = parse_message(await recv(sock))
    (event,) = await tu.wait_for(RequestReceived)
    assert isinstance(event, RequestReceived)
    assert event.source == ("127.0.0.1", client_port)
    assert event.request.via.received == "127.0.0.1"
    assert event.request.via.rport == client_port
    for answer in (first, second):  # the core re-sent its last response
        assert isinstance(answer, Response) and answer.status == 200
        assert answer.via.rport == client_port and answer.to_tag == "tu1"
    assert len([e for e in tu.events if isinstance(e, RequestReceived)]) == 1


async def test_client_transaction_retransmits_and_times_out_on_loop_timers(
    endpoint: tuple[SipEndpoint, Tu],
) -> None:
    """Timer E doubles from T1 (17.1.2.2), Timer F ends it at 64*T1, all from call_at."""
    ep, tu = endpoint
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.setblocking(False)
        request = parse_message(options("127.0.0.1", ep.addresses["UDP"][0][1], "UDP"))
        assert isinstance(request, Request)
        started = loop.time()
        key = ep.send_request(request, NextHop("127.0.0.1", silent.getsockname()[1], "UDP"))
        arrivals = []
        for _ in range(4):
            await recv(silent)
            arrivals.append(loop.time() - started)
        (timeout,) = await tu.wait_for(TransactionTimedOut)
        elapsed = loop.time() - started
    assert isinstance(timeout, TransactionTimedOut) and timeout.tx == key
    # sends at 0, T1, 3*T1, 7*T1 (intervals T1, 2*T1, 4*T1)
    for got, expected in zip(arrivals, [0.0, 0.05, 0.15, 0.35], strict=True):
        assert expected <= got + 0.005 < expected + 0.1
    assert 64 * 0.05 <= elapsed + 0.005 < 64 * 0.05 + 0.5
    assert ep.core.transaction_count == 0
    assert ep.timers.armed_at is None


async def test_transport_error_reaches_the_tu() -> None:
    """A TCP request to a closed port: the core hears transport_error (17.1.4)."""
    from pbx.sip.events import TransportErrorOccurred

    tu = Tu()
    ep = SipEndpoint(asyncio.get_running_loop(), SipCore(), tu, [Listen("127.0.0.1", 0)])
    tu.endpoint = ep
    await ep.start()
    try:
        closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        request = parse_message(options("127.0.0.1", ep.addresses["TCP"][0][1], "TCP"))
        assert isinstance(request, Request)
        key = ep.send_request(request, NextHop("127.0.0.1", port, "TCP"))
        (event,) = await tu.wait_for(TransportErrorOccurred)
        assert isinstance(event, TransportErrorOccurred) and event.tx == key
    finally:
        await ep.close()


def test_stamped_bytes_only_rewrites_when_needed() -> None:
    plain = options("127.0.0.1", 5060, "UDP", rport=False)
    assert stamped_bytes(plain, ("127.0.0.1", 5060)) is plain
    assert stamped_bytes(b"garbage", ("127.0.0.1", 5060)) == b"garbage"
    rewritten = parse_message(stamped_bytes(options("10.0.0.1", 5060, "UDP"), ("127.0.0.1", 7)))
    assert (rewritten.via.received, rewritten.via.rport) == ("127.0.0.1", 7)


async def test_runs_on_the_requested_loop(
    event_loop_policy: asyncio.AbstractEventLoopPolicy,
) -> None:
    on_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    assert on_uvloop == type(event_loop_policy).__module__.startswith("uvloop")


async def test_closed_tcp_connection_is_reported(endpoint: tuple[SipEndpoint, Tu]) -> None:
    from pbx.net.transport import ConnectionClosed

    ep, tu = endpoint
    ep.on_closed = tu  # type: ignore[assignment]
    reader, writer = await asyncio.open_connection("127.0.0.1", ep.addresses["TCP"][0][1])
    writer.write(options("127.0.0.1", 5060, "TCP"))
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)).startswith(b"SIP/2.0 200")
    (request,) = await tu.wait_for(RequestReceived)
    writer.close()
    (closed,) = await tu.wait_for(ConnectionClosed)
    assert isinstance(request, RequestReceived) and isinstance(closed, ConnectionClosed)
    assert closed.remote == request.source and closed.transport == "TCP"
    assert closed.conn_id is not None
    assert ep.transports.tcp.connections == []
