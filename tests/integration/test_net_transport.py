"""The transport manager on real sockets (127.0.0.1 and ::1 only).

Every wait is bounded: `recv_until` and `wait_for` give up after a few
seconds, so a broken feature fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Hashable

import pytest

from pbx.net.transport import Listen, ListenError, TransportManager
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.transport import response_next_hop, stamp_request

pytestmark = pytest.mark.integration

WAIT = 3.0


def ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def options(
    via_host: str,
    via_port: int,
    transport: str,
    *,
    branch: str = "z9hG4bKt1",
    rport: bool = True,
    body: bytes = b"",
    call_id: str = "call-1",
) -> bytes:
    host = f"[{via_host}]" if ":" in via_host else via_host
    rport_param = ";rport" if rport else ""
    return (
        f"OPTIONS sip:pbx@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:{via_port}{rport_param};branch={branch}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:alice@example.com>;tag=a1\r\n"
        f"To: <sip:pbx@example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"\r\n"
    ).encode() + body


class Recorder:
    """An on_data callback that keeps what arrived and can answer requests with 200."""

    def __init__(self) -> None:
        self.items: list[tuple[Request | Response, tuple[str, int], str, Hashable | None]] = []
        self.arrived = asyncio.Event()
        self.manager: TransportManager | None = None
        self.answer = True

    def __call__(
        self, data: bytes, source: tuple[str, int], transport: str, conn_id: Hashable | None
    ) -> None:
        message = parse_message(data)
        if isinstance(message, Request):
            stamp_request(message, source)
        self.items.append((message, source, transport, conn_id))
        self.arrived.set()
        if self.answer and isinstance(message, Request) and self.manager is not None:
            response = message.make_response(200, to_tag="pbx1")
            hop = response_next_hop(response.via, conn_id)
            self.manager.send(bytes(response), hop.address, hop.transport, hop.conn_id)

    async def wait(self, count: int) -> None:
        async def until() -> None:
            while len(self.items) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(until(), WAIT)


async def start(recorder: Recorder, host: str = "127.0.0.1", **kwargs: object) -> TransportManager:
    loop = asyncio.get_running_loop()
    manager = TransportManager(loop, recorder, [Listen(host, 0)], **kwargs)  # type: ignore[arg-type]
    recorder.manager = manager
    await manager.start()
    return manager


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    yield rec
    if rec.manager is not None:
        await rec.manager.close()


async def udp_exchange(sock: socket.socket, data: bytes, dest: tuple[str, int]) -> bytes:
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    sock.sendto(data, dest)  # a datagram send never blocks; uvloop has no sock_sendto
    return await asyncio.wait_for(loop.sock_recv(sock, 65535), WAIT)


# --- UDP ----------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
async def test_udp_round_trip_with_rport_and_received(recorder: Recorder, family: str) -> None:
    if family == "ipv6" and not ipv6_available():
        pytest.skip("IPv6 loopback ::1 not available on this host")
    host, af = ("127.0.0.1", socket.AF_INET) if family == "ipv4" else ("::1", socket.AF_INET6)
    manager = await start(recorder, host)
    port = manager.addresses["UDP"][0][1]
    assert manager.addresses["TCP"][0][1] == port  # one port for both transports
    with socket.socket(af, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        client_port = sock.getsockname()[1]
        # The Via claims a private address and port; the source is the truth.
        reply = await udp_exchange(sock, options("192.0.2.77", 5999, "UDP"), (host, port))
    message, source, transport, conn_id = recorder.items[0]
    assert (source, transport, conn_id) == ((host, client_port), "UDP", None)
    assert message.via.received == (f"[{host}]" if family == "ipv6" else host)
    assert message.via.rport == client_port
    assert message.via.host == "192.0.2.77"
    response = parse_message(reply)
    assert isinstance(response, Response) and response.status == 200
    assert response.via.rport == client_port  # came back to the source port, not 5999
    assert response.call_id == "call-1"


async def test_udp_oversized_request_gets_413(recorder: Recorder) -> None:
    manager = await start(recorder, max_message_size=1000)
    port = manager.addresses["UDP"][0][1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        reply = await udp_exchange(
            sock, options("127.0.0.1", 1, "UDP", body=b"x" * 2000), ("127.0.0.1", port)
        )
    response = parse_message(reply)
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (413, "Request Entity Too Large")
    assert response.call_id == "call-1" and response.to_tag
    assert recorder.items == []  # the core never saw it
    assert manager.oversized == 1


async def test_udp_oversized_garbage_is_dropped(recorder: Recorder) -> None:
    manager = await start(recorder, max_message_size=600)
    port = manager.addresses["UDP"][0][1]
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        await loop.sock_sendto(sock, b"\x00garbage" * 100, ("127.0.0.1", port))
        # A valid request afterwards is answered; its 200 is the first datagram
        # back, so the garbage got no answer.
        reply = await udp_exchange(sock, options("127.0.0.1", 1, "UDP"), ("127.0.0.1", port))
    response = parse_message(reply)
    assert isinstance(response, Response) and response.status == 200
    assert manager.oversized == 1
    assert len(recorder.items) == 1


async def test_port_in_use_is_a_clear_error(recorder: Recorder) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        manager = TransportManager(
            asyncio.get_running_loop(), recorder, [Listen("127.0.0.1", port)]
        )
        with pytest.raises(ListenError) as info:
            await manager.start()
    assert str(info.value) == (
        f"cannot listen on UDP 127.0.0.1:{port}: address already in use "
        "(another SIP server running?)"
    )
    assert (info.value.transport, info.value.port) == ("UDP", port)
    assert manager.addresses == {"UDP": [], "TCP": []}


async def test_tcp_port_in_use_closes_the_udp_listener(recorder: Recorder) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        manager = TransportManager(
            asyncio.get_running_loop(), recorder, [Listen("127.0.0.1", port)]
        )
        with pytest.raises(ListenError, match=f"TCP 127.0.0.1:{port}: address already in use"):
            await manager.start()
    assert manager.addresses == {"UDP": [], "TCP": []}


def test_new_event_loop_prefers_uvloop_and_serves_udp_and_tcp() -> None:
    """The loop helper gives uvloop where installed; the listeners work on it."""
    from pbx.net.transport import new_event_loop

    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    loop = new_event_loop()
    try:
        if uvloop is not None:
            assert isinstance(loop, uvloop.Loop)

        async def round_trips() -> tuple[Response, Response]:
            rec = Recorder()
            manager = await start(rec)
            try:
                port = manager.addresses["UDP"][0][1]
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind(("127.0.0.1", 0))
                    udp = parse_message(
                        await udp_exchange(
                            sock, options("127.0.0.1", 1, "UDP"), ("127.0.0.1", port)
                        )
                    )
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(options("127.0.0.1", 1, "TCP", call_id="tcp"))
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await asyncio.wait_for(reader.read(65536), WAIT)
                writer.close()
                assert isinstance(udp, Response)
                tcp = parse_message(data)
                assert isinstance(tcp, Response)
                return udp, tcp
            finally:
                await manager.close()

        udp, tcp = loop.run_until_complete(round_trips())
    finally:
        loop.close()
    assert (udp.status, udp.call_id) == (200, "call-1")
    assert (tcp.status, tcp.call_id) == (200, "tcp")


async def test_ipv4_and_ipv6_listen_side_by_side_on_one_port(recorder: Recorder) -> None:
    if not ipv6_available():
        pytest.skip("IPv6 loopback ::1 not available on this host")
    loop = asyncio.get_running_loop()
    probe = TransportManager(loop, recorder, [Listen("127.0.0.1", 0)])
    await probe.start()
    port = probe.addresses["UDP"][0][1]
    await probe.close()
    manager = TransportManager(loop, recorder, [Listen("127.0.0.1", port), Listen("::1", port)])
    recorder.manager = manager
    await manager.start()
    assert sorted(manager.addresses["UDP"]) == [("127.0.0.1", port), ("::1", port)]
    assert sorted(manager.addresses["TCP"]) == [("127.0.0.1", port), ("::1", port)]
    # a send picks the listener of the destination's family
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as four,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as six,
    ):
        four.bind(("127.0.0.1", 0))
        six.bind(("::1", 0))
        four.setblocking(False)
        six.setblocking(False)
        manager.send(b"to-four", ("127.0.0.1", four.getsockname()[1]), "UDP")
        manager.send(b"to-six", ("[::1]", six.getsockname()[1]), "UDP")
        got4 = await asyncio.wait_for(loop.sock_recvfrom(four, 100), WAIT)
        got6 = await asyncio.wait_for(loop.sock_recvfrom(six, 100), WAIT)
    assert got4 == (b"to-four", ("127.0.0.1", port))
    assert (got6[0], got6[1][:2]) == (b"to-six", ("::1", port))


async def test_oversized_ack_and_response_get_no_answer(recorder: Recorder) -> None:
    """ACK is never answered (RFC 3261 17.2.1) and a response never gets a response."""
    manager = await start(recorder, max_message_size=700)
    port = manager.addresses["UDP"][0][1]
    big_ack = (
        options("127.0.0.1", 1, "UDP", body=b"a" * 800)
        .replace(b"OPTIONS sip:", b"ACK sip:")
        .replace(b"1 OPTIONS", b"1 ACK")
    )
    big_response = (
        b"SIP/2.0 200 OK\r\n" + options("127.0.0.1", 1, "UDP", body=b"r" * 800).split(b"\r\n", 1)[1]
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(big_ack, ("127.0.0.1", port))
        sock.sendto(big_response, ("127.0.0.1", port))
        reply = await udp_exchange(sock, options("127.0.0.1", 1, "UDP"), ("127.0.0.1", port))
    response = parse_message(reply)
    assert isinstance(response, Response) and response.status == 200  # the first reply
    assert manager.oversized == 2
