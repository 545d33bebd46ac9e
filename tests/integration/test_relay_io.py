"""How the relay reads its sockets: the epoll reader (relay_poll) and the transports fallback.

Both ways must behave alike: forwarding with latching, counters, close
returning every port, and a broken packet or a failed send on one call never
stopping the others. Same harness as test_relay.py (stdlib loop and uvloop).
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
from typing import Any

import pytest

from pbx.media import relay_poll
from pbx.media.ports import PortAllocator
from pbx.media.relay import Leg, Relay, RelaySession
from pbx.media.relay_poll import EpollReader
from tests.integration.test_relay import HIGH, LOW, FakeClock, Phone, phone, rtp, run, until

pytestmark = pytest.mark.integration
__all__ = ["run"]  # the loop fixture, parametrised over asyncio and uvloop

HAS_EPOLL = hasattr(select, "epoll")
MODES = [
    pytest.param(
        "epoll", marks=pytest.mark.skipif(not HAS_EPOLL, reason="select.epoll is Linux-only")
    ),
    "transports",
]


def relay_with(sockets: str, pool: int = 64) -> Relay:
    return Relay(
        PortAllocator(LOW, HIGH),
        bind_v4="127.0.0.1",
        latch_timeout=5.0,
        sweep_interval=3600.0,
        clock=FakeClock(),
        sockets=sockets,
        pool=pool,
    )


async def call(relay: Relay, label: str = "c") -> tuple[RelaySession, Phone, Phone]:
    session = await relay.open_session(label)
    a, b = await phone(), await phone()
    session.set_remote(Leg.A, "127.0.0.1", a.port)
    session.set_remote(Leg.B, "127.0.0.1", b.port)
    return session, a, b


@pytest.mark.parametrize("pool", [0, 64])
@pytest.mark.parametrize("sockets", MODES)
def test_forwards_latches_counts_and_closes(run: Any, sockets: str, pool: int) -> None:
    async def body() -> None:
        relay = relay_with(sockets, pool)
        session, a, b = await call(relay)
        expected = EpollReader if sockets == "epoll" else type(None)
        assert type(relay._reader) is expected
        la, lb = session.local(Leg.A), session.local(Leg.B)
        for seq in range(1, 6):
            a.send(rtp(seq), "127.0.0.1", la.rtp)
            assert await b.recv() == (rtp(seq), ("127.0.0.1", lb.rtp))
        b.send(rtp(9), "127.0.0.1", lb.rtp)
        assert await a.recv() == (rtp(9), ("127.0.0.1", la.rtp))
        stranger = await phone()
        stranger.send(rtp(10), "127.0.0.1", la.rtp)  # A is latched: refused
        await until(lambda: session.stats(Leg.A).rejected == 1)
        stats = session.stats(Leg.A)
        assert (stats.packets_in, stats.bytes_in, stats.packets_out) == (5, 5 * 172, 1)
        assert stats.latched == ("127.0.0.1", a.port)
        assert (relay.open_transports, relay.ports.in_use) == (4, 2)
        await session.aclose()
        assert (relay.open_transports, relay.ports.in_use) == (0, 0)
        parked = 4 if pool else 0  # both legs' sockets stay bound for the next session
        assert (relay.pooled_transports, relay.ports.parked) == (parked, parked // 2)
        if relay._reader is not None:
            assert relay._reader.watched == parked
        await relay.aclose()
        assert (relay.pooled_transports, relay.ports.parked, relay.ports.in_use) == (0, 0, 0)
        if relay._reader is not None:
            assert relay._reader.closed

    run(body)


@pytest.mark.parametrize("sockets", MODES)
def test_sync_close_frees_ports_on_the_next_loop_round(run: Any, sockets: str) -> None:
    async def body() -> None:
        relay = relay_with(sockets)
        sessions = [(await call(relay, f"c{i}"))[0] for i in range(4)]
        assert (relay.open_transports, relay.ports.in_use) == (16, 8)
        sessions[0].close()
        await until(lambda: relay.open_transports == 12)
        assert relay.ports.in_use == 6
        relay.close()
        await until(lambda: relay.open_transports == 0)
        assert relay.ports.in_use == 0
        if relay._reader is not None:
            assert relay._reader.closed

    run(body)


@skip_without_epoll := pytest.mark.skipif(not HAS_EPOLL, reason="select.epoll is Linux-only")
def test_a_failing_port_is_logged_and_the_other_calls_go_on(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        relay = relay_with("epoll")
        broken, a1, _b1 = await call(relay, "broken")
        fine, a2, b2 = await call(relay, "fine")

        def explode(data: bytes) -> bytes:
            raise ZeroDivisionError("bug")

        broken.set_transcoders(explode, None)  # runs inside the port's datagram_received
        with caplog.at_level(logging.ERROR, logger=relay_poll.__name__):
            a1.send(rtp(1), "127.0.0.1", broken.local(Leg.A).rtp)
            a2.send(rtp(2), "127.0.0.1", fine.local(Leg.A).rtp)
            assert (await b2.recv())[0] == rtp(2)
            await until(lambda: "datagram handling failed" in caplog.text)
        a2.send(rtp(3), "127.0.0.1", fine.local(Leg.A).rtp)
        assert (await b2.recv())[0] == rtp(3)
        await relay.aclose()

    run(body)


@skip_without_epoll
def test_a_send_error_is_reported_to_the_port_not_raised(
    run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def body() -> None:
        relay = relay_with("epoll")
        session, a, b = await call(relay)
        port = session._legs[Leg.A].rtp
        a.send(rtp(1), "127.0.0.1", session.local(Leg.A).rtp)
        assert (await b.recv())[0] == rtp(1)

        def refuse(data: bytes, addr: Any) -> None:
            raise ConnectionRefusedError(111, "refused")

        port.sendto = refuse
        with caplog.at_level(logging.DEBUG, logger="pbx.media.relay"):
            a.send(rtp(2), "127.0.0.1", session.local(Leg.A).rtp)
            await until(lambda: "leg a socket error: [Errno 111] refused" in caplog.text)
        assert session.stats(Leg.A).packets_in == 2
        b.send(rtp(3), "127.0.0.1", session.local(Leg.B).rtp)  # the other way still works
        assert (await a.recv())[0] == rtp(3)
        await relay.aclose()

    run(body)


def test_unknown_socket_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="sockets must be one of auto, epoll, transports"):
        Relay(PortAllocator(LOW, HIGH), sockets="iouring")


def test_epoll_demanded_where_it_cannot_run_fails_clearly(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EpollReader, "for_loop", classmethod(lambda cls, loop, c=0.0: None))

    async def body() -> None:
        relay = relay_with("epoll")
        with pytest.raises(RuntimeError, match="needs select.epoll and a loop with add_reader"):
            await relay.open_session("x")
        assert (relay.open_transports, relay.ports.in_use) == (0, 0)
        auto = relay_with("auto")  # auto falls back to transports instead
        session, a, b = await call(auto)
        assert auto._reader is None
        a.send(rtp(1), "127.0.0.1", session.local(Leg.A).rtp)
        assert (await b.recv())[0] == rtp(1)
        await auto.aclose()

    run(body)


class _Recorder:
    """A port stand-in that records (socket index, datagram)."""

    def __init__(self, index: int, got: list[tuple[int, bytes]]) -> None:
        self.index = index
        self.got = got

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((self.index, data))

    def error_received(self, exc: Exception) -> None:
        raise AssertionError(exc)


def _queued_reader(batch: int, sockets: int, each: int) -> tuple[Any, ...]:
    """A reader (on an unused loop) over `sockets` sockets with `each` datagrams queued."""
    import socket

    loop = asyncio.new_event_loop()
    reader = EpollReader(loop, batch=batch)
    got: list[tuple[int, bytes]] = []
    socks = []
    for index in range(sockets):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        reader.add(sock, _Recorder(index, got))
        socks.append(sock)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for index, sock in enumerate(socks):
        for n in range(each):
            sender.sendto(bytes([index, n]), sock.getsockname())
    return loop, reader, got, socks, sender


def _close_all(loop: Any, reader: EpollReader, socks: list[Any], sender: Any) -> None:
    reader.close()
    for sock in [*socks, sender]:
        sock.close()
    loop.close()


@skip_without_epoll
def test_reader_keeping_up_reads_one_datagram_per_ready_socket_a_round() -> None:
    loop, reader, got, socks, sender = _queued_reader(batch=4, sockets=3, each=2)
    try:
        reader._ready()  # 3 ready < batch 4: one each, no read that would end in EAGAIN
        assert sorted(got) == [(0, b"\x00\x00"), (1, b"\x01\x00"), (2, b"\x02\x00")]
        reader._ready()  # level-triggered: the second datagrams come next round
        assert sorted(got) == [(i, bytes([i, n])) for i in range(3) for n in range(2)]
        reader.remove(socks[0])
        sender.sendto(b"late", socks[0].getsockname())  # no longer watched
        reader._ready()
        assert len(got) == 6 and reader.watched == 2
    finally:
        _close_all(loop, reader, socks, sender)
    assert reader.closed


class _CountingSocket(socket.socket):
    """A UDP socket that counts the reads that found it empty (EAGAIN)."""

    empty_reads = 0

    def recvfrom(self, size: int, flags: int = 0) -> tuple[bytes, Any]:
        try:
            return super().recvfrom(size, flags)
        except BlockingIOError:
            _CountingSocket.empty_reads += 1
            raise


def _behind_reader(sockets: int, each: int) -> tuple[Any, ...]:
    """A reader with batch 2 over counting sockets with `each` datagrams queued."""
    _CountingSocket.empty_reads = 0
    loop = asyncio.new_event_loop()
    reader = EpollReader(loop, batch=2)
    got: list[tuple[int, bytes]] = []
    socks = []
    for index in range(sockets):
        sock = _CountingSocket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        reader.add(sock, _Recorder(index, got))
        socks.append(sock)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _queue(sender, socks, range(each))
    return loop, reader, got, socks, sender


def _queue(sender: socket.socket, socks: list[Any], numbers: range) -> None:
    for index, sock in enumerate(socks):
        for n in numbers:
            sender.sendto(bytes([index, n]), sock.getsockname())


@skip_without_epoll
def test_reader_behind_by_one_datagram_per_socket_never_reads_a_socket_empty() -> None:
    loop, reader, got, socks, sender = _behind_reader(sockets=5, each=1)
    try:
        assert reader._round() == 2  # a whole batch: behind, but one datagram per socket
        assert len(got) == 2
        rounds = 1
        while reader._round() and rounds < 20:
            rounds += 1
        assert sorted(got) == [(i, bytes([i, 0])) for i in range(5)]
        assert rounds == 3  # 2 + 2 + 1 sockets
        assert _CountingSocket.empty_reads == 0  # no second read that would end in EAGAIN
    finally:
        _close_all(loop, reader, socks, sender)


@skip_without_epoll
def test_reader_far_behind_reads_deep_only_while_it_pays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_poll, "PROBE_EVERY", 2)
    deep = relay_poll.DEEP
    loop, reader, got, socks, sender = _behind_reader(sockets=2, each=2 + deep)
    try:
        reader._round()  # first whole batch: one datagram per socket
        assert len(got) == 2
        reader._round()  # second whole batch: a probe reads deep, and it paid
        assert len(got) == 2 + 2 * deep and _CountingSocket.empty_reads == 0
        reader._round()  # still deep: one datagram left each, then both reads find nothing
        assert len(got) == 2 * (2 + deep) and _CountingSocket.empty_reads == 2
        assert reader._round() == 0
        _queue(sender, socks, range(2 + deep, 4 + deep))
        reader._round()  # deep reads stopped paying: one datagram per socket again
        assert len(got) == 2 * (3 + deep) and _CountingSocket.empty_reads == 2
        reader._round()  # the next probe reads each socket's last one and an empty read
        assert len(got) == 2 * (4 + deep) and _CountingSocket.empty_reads == 4
        assert reader._round() == 0
        for index in range(2):  # every datagram, each socket's in order
            mine = [data for i, data in got if i == index]
            assert mine == [bytes([index, n]) for n in range(4 + deep)]
    finally:
        _close_all(loop, reader, socks, sender)


@pytest.mark.parametrize("sockets", MODES)
def test_a_socket_failing_to_open_leaks_no_port(
    run: Any, sockets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        relay = relay_with(sockets)
        calls = 0

        def fail_second(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise OSError(24, "Too many open files")
            return real(*args, **kwargs)

        if sockets == "epoll":
            real = EpollReader.add
            monkeypatch.setattr(EpollReader, "add", fail_second)
        else:
            loop = asyncio.get_running_loop()
            real = loop.create_datagram_endpoint
            monkeypatch.setattr(loop, "create_datagram_endpoint", fail_second)
        with pytest.raises(OSError, match="Too many open files"):
            await relay.open_session("x")
        await until(lambda: relay.open_transports == 0)
        assert (relay.open_sessions, relay.ports.in_use) == (0, 0)
        monkeypatch.undo()
        session, a, b = await call(relay)  # the relay still works
        a.send(rtp(1), "127.0.0.1", session.local(Leg.A).rtp)
        assert (await b.recv())[0] == rtp(1)
        await relay.aclose()

    run(body)


class _Sink:
    """A port stand-in that records what the reader hands it."""

    def __init__(self, got: list[bytes]) -> None:
        self.got = got

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(data)

    def error_received(self, exc: Exception) -> None:
        raise AssertionError(exc)


@skip_without_epoll
def test_coalescing_polls_on_a_timer_while_busy_and_watches_again_when_quiet(run: Any) -> None:
    import socket

    async def body() -> None:
        loop = asyncio.get_running_loop()
        reader = EpollReader(loop, batch=64, coalesce=0.05)
        got: list[bytes] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        reader.add(sock, _Sink(got))
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sender.sendto(b"1", sock.getsockname())
            await until(lambda: got == [b"1"])
            assert not reader.polling  # a single datagram: still watching the set
            sender.sendto(b"2", sock.getsockname())
            await until(lambda: got == [b"1", b"2"])
            assert reader.polling  # two rounds within 50 ms: now read on a timer
            for n in range(3, 6):
                sender.sendto(str(n).encode(), sock.getsockname())
            await until(lambda: len(got) == 5)  # the timer picks them up
            assert got == [b"1", b"2", b"3", b"4", b"5"]
            await until(lambda: not reader.polling)  # a round found nothing: watch again
            sender.sendto(b"6", sock.getsockname())
            await until(lambda: got[-1] == b"6")
        finally:
            reader.remove(sock)
            reader.close()
            sock.close()
            sender.close()
        assert reader.closed and not reader.polling

    run(body)


@skip_without_epoll
def test_a_coalescing_relay_still_forwards_everything(run: Any) -> None:
    async def body() -> None:
        relay = Relay(
            PortAllocator(LOW, HIGH), bind_v4="127.0.0.1", clock=FakeClock(), coalesce=0.002
        )
        session, a, b = await call(relay)
        la = session.local(Leg.A)
        for seq in range(1, 41):
            a.send(rtp(seq), "127.0.0.1", la.rtp)
        received = [(await b.recv())[0] for _ in range(40)]
        assert sorted(received) == sorted(rtp(seq) for seq in range(1, 41))
        assert session.stats(Leg.A).packets_in == 40
        await relay.aclose()
        assert relay._reader is not None and relay._reader.closed

    run(body)


def test_negative_coalescing_is_refused() -> None:
    with pytest.raises(ValueError, match="coalesce must be >= 0 seconds: -1"):
        Relay(PortAllocator(LOW, HIGH), coalesce=-1)
