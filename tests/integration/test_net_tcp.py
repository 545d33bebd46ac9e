"""TCP on real sockets: framing, connection reuse, idle timeout, size limit, pings.

Only 127.0.0.1 and ::1; every wait is bounded by WAIT seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from pbx.net.transport import TransportManager
from pbx.sip.framing import StreamParser
from pbx.sip.message import Request, Response
from tests.integration.test_net_transport import (
    WAIT,
    Recorder,
    ipv6_available,
    options,
    start,
)

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


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    yield rec
    if rec.manager is not None:
        await rec.manager.close()


class Client:
    """A TCP peer: writes bytes, reads whole SIP messages with the project's StreamParser."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.parser = StreamParser()
        self.pending: list[Request | Response] = []
        self.port: int = writer.get_extra_info("sockname")[1]

    @classmethod
    async def connect(cls, host: str, port: int) -> Client:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), WAIT)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_message(self) -> Request | Response:
        while not self.pending:
            chunk = await asyncio.wait_for(self.reader.read(65536), WAIT)
            if not chunk:
                raise ConnectionError("closed by the PBX")
            self.pending += self.parser.feed(chunk)
        return self.pending.pop(0)

    async def read_raw(self) -> bytes:
        return await asyncio.wait_for(self.reader.read(65536), WAIT)

    async def closed_by_peer(self) -> bool:
        """True when the PBX closed the connection (EOF) within WAIT seconds."""
        while True:
            chunk = await asyncio.wait_for(self.reader.read(65536), WAIT)
            if not chunk:
                return True

    def close(self) -> None:
        self.writer.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for a condition the loop will make true."""
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.005)


def tcp_port(manager: TransportManager) -> int:
    return manager.addresses["TCP"][0][1]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_two_messages_in_one_write_answered_on_the_same_connection(
    recorder: Recorder, host: str
) -> None:
    if host == "::1" and not ipv6_available():
        pytest.skip("IPv6 loopback ::1 not available on this host")
    manager = await start(recorder, host)
    client = await Client.connect(host, tcp_port(manager))
    first = options("192.0.2.1", 5060, "TCP", branch="z9hG4bKone", call_id="one")
    second = options("192.0.2.1", 5060, "TCP", branch="z9hG4bKtwo", call_id="two", body=b"hi")
    await client.send(first + second)
    answers = [await client.read_message(), await client.read_message()]
    client.close()
    assert [(m.status, m.call_id) for m in answers] == [(200, "one"), (200, "two")]  # type: ignore[union-attr]
    await recorder.wait(2)
    (msg1, src1, tr1, conn1), (msg2, src2, tr2, conn2) = recorder.items
    assert (src1, tr1) == ((host, client.port), "TCP")
    assert conn1 == conn2 and conn1 is not None
    assert msg2.body == b"hi"
    assert msg1.via.received == (f"[{host}]" if ":" in host else host)
    assert msg1.via.rport == client.port


async def test_message_split_across_writes(recorder: Recorder) -> None:
    manager = await start(recorder)
    client = await Client.connect("127.0.0.1", tcp_port(manager))
    message = options("127.0.0.1", client.port, "TCP", body=b"0123456789")
    cut = message.index(b"CSeq")
    await client.send(message[:cut])
    await until(
        lambda: bool(manager.tcp.connections) and manager.tcp.connections[0].framer.buffered == cut
    )
    assert recorder.items == []
    await client.send(message[cut:-3])
    await until(lambda: manager.tcp.connections[0].framer.buffered == len(message) - 3)
    assert recorder.items == []
    await client.send(message[-3:])
    answer = await client.read_message()
    client.close()
    assert isinstance(answer, Response) and answer.status == 200
    assert recorder.items[0][0].body == b"0123456789"


async def test_request_to_a_tcp_registered_contact_reuses_its_connection(
    recorder: Recorder,
) -> None:
    manager = await start(recorder)
    client = await Client.connect("127.0.0.1", tcp_port(manager))
    await client.send(options("10.0.0.5", 5060, "TCP"))  # a phone behind a NAT
    assert (await client.read_message()).status == 200  # type: ignore[union-attr]
    _, source, transport, conn_id = recorder.items[0]
    # The registrar keeps (source, transport); a later INVITE goes to that flow.
    invite = (
        f"INVITE sip:alice@10.0.0.5:5060;transport=tcp SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:{tcp_port(manager)};branch=z9hG4bKinv\r\n"
        f"From: <sip:pbx@127.0.0.1>;tag=p1\r\nTo: <sip:alice@example.com>\r\n"
        f"Call-ID: inv-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    manager.send(invite, source, transport)  # found by remote address, no conn_id given
    received = await client.read_message()
    assert isinstance(received, Request)
    assert (received.method, received.call_id) == ("INVITE", "inv-1")
    assert len(manager.tcp.connections) == 1
    assert manager.tcp.connections[0].conn_id == conn_id
    # and by connection id
    manager.send(invite.replace(b"inv-1", b"inv-2"), ("192.0.2.99", 1), "TCP", conn_id)
    assert (await client.read_message()).call_id == "inv-2"
    client.close()


async def test_outbound_connection_is_opened_then_reused(recorder: Recorder) -> None:
    manager = await start(recorder)
    accepted: list[Client] = []
    got = asyncio.Event()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(Client(reader, writer))
        got.set()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for n in range(3):  # sent before the connection exists: queued, in order
            manager.send(
                options("127.0.0.1", 5060, "TCP", call_id=f"out-{n}"), ("127.0.0.1", port), "TCP"
            )
        await asyncio.wait_for(got.wait(), WAIT)
        peer = accepted[0]
        calls = [(await peer.read_message()).call_id for _ in range(3)]
        assert calls == ["out-0", "out-1", "out-2"]
        manager.send(options("127.0.0.1", 5060, "TCP", call_id="out-3"), ("127.0.0.1", port), "TCP")
        assert (await peer.read_message()).call_id == "out-3"
        assert len(accepted) == 1 and len(manager.tcp.connections) == 1
        # the peer's answer comes in on that connection like any message
        await peer.send(
            b"SIP/2.0 200 OK\r\n" + options("127.0.0.1", 5060, "TCP").split(b"\r\n", 1)[1]
        )
        await recorder.wait(1)
        assert recorder.items[0][2] == "TCP"
        assert recorder.items[0][3] == manager.tcp.connections[0].conn_id
        peer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_connection_refused_reports_an_error(recorder: Recorder) -> None:
    manager = await start(recorder)
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    failed = asyncio.Event()
    manager.send(b"x", ("127.0.0.1", port), "TCP", on_error=failed.set)
    await asyncio.wait_for(failed.wait(), WAIT)
    assert manager.tcp.connections == []


async def test_idle_connection_is_closed(recorder: Recorder) -> None:
    manager = await start(recorder, idle_timeout=0.3)
    client = await Client.connect("127.0.0.1", tcp_port(manager))
    await client.send(options("127.0.0.1", client.port, "TCP"))
    await client.read_message()
    answered = time.monotonic()
    assert await client.closed_by_peer()
    idle = time.monotonic() - answered
    assert 0.25 <= idle < WAIT
    await until(lambda: manager.tcp.connections == [])


async def test_traffic_keeps_a_connection_open(recorder: Recorder) -> None:
    manager = await start(recorder, idle_timeout=0.4)
    client = await Client.connect("127.0.0.1", tcp_port(manager))
    for n in range(4):  # 4 x 0.2 s = 0.8 s of life, twice the timeout
        await client.send(options("127.0.0.1", client.port, "TCP", call_id=f"k{n}"))
        assert (await client.read_message()).call_id == f"k{n}"
        await asyncio.sleep(0.2)
    assert len(manager.tcp.connections) == 1
    client.close()


async def test_oversized_tcp_request_gets_413_then_close(recorder: Recorder) -> None:
    manager = await start(recorder, max_message_size=800)
    client = await Client.connect("127.0.0.1", tcp_port(manager))
    message = options("127.0.0.1", client.port, "TCP", body=b"x" * 5000)
    await client.send(message[:600])  # the headers are enough to refuse it
    answer = await client.read_message()
    assert isinstance(answer, Response)
    assert (answer.status, answer.reason, answer.call_id) == (
        413,
        "Request Entity Too Large",
        "call-1",
    )
    assert answer.via.rport == client.port
    assert await client.closed_by_peer()
    assert recorder.items == [] and manager.oversized == 1


async def test_missing_content_length_gets_400_then_close(recorder: Recorder) -> None:
    manager = await start(recorder)
    client = await Client.connect("127.0.0.1", tcp_port(manager))
    message = options("127.0.0.1", client.port, "TCP").replace(b"Content-Length: 0\r\n", b"")
    await client.send(message)
    answer = await client.read_message()
    assert isinstance(answer, Response)
    assert (answer.status, answer.reason) == (400, "Missing Content-Length")
    assert await client.closed_by_peer()


async def test_double_crlf_ping_gets_a_pong(recorder: Recorder) -> None:
    manager = await start(recorder)
    client = await Client.connect("127.0.0.1", tcp_port(manager))
    await client.send(b"\r\n\r\n")
    assert await client.read_raw() == b"\r\n"
    client.close()


async def test_connections_over_the_cap_are_refused(recorder: Recorder) -> None:
    manager = await start(recorder)
    manager.tcp.max_connections = 2
    port = tcp_port(manager)
    kept = [await Client.connect("127.0.0.1", port) for _ in range(2)]
    await until(lambda: len(manager.tcp.connections) == 2)
    extra = await Client.connect("127.0.0.1", port)
    assert await extra.closed_by_peer()
    # the first two still work
    await kept[1].send(options("127.0.0.1", kept[1].port, "TCP"))
    assert (await kept[1].read_message()).status == 200  # type: ignore[union-attr]
    assert len(manager.tcp.connections) == 2
    for client in (*kept, extra):
        client.close()


async def test_a_peer_that_stops_reading_is_dropped(recorder: Recorder) -> None:
    manager = await start(recorder)
    manager.tcp.max_write_buffer = 64 * 1024
    client = await Client.connect("127.0.0.1", tcp_port(manager))
    await client.send(options("127.0.0.1", client.port, "TCP"))
    await recorder.wait(1)
    conn_id = recorder.items[0][3]
    chunk = b"x" * 65536
    # The client never reads: kernel buffers fill, then asyncio's buffer passes
    # the limit. Bounded: at most 64 MiB offered, checked every 64 KiB.
    for _ in range(1024):
        if manager.tcp.get(conn_id) is None:
            break
        manager.send(chunk, ("127.0.0.1", client.port), "TCP", conn_id)
        await asyncio.sleep(0)
    assert manager.tcp.get(conn_id) is None
    await until(lambda: manager.tcp.connections == [])
    client.close()
