"""The connected twin of a latched RTP port (pbx.media.relay_port._Port.source).

On the epoll path a latched RTP port gets a second socket on the same port,
connected to the latched phone, and the other leg answers that phone through
it. The latching must not notice: other sources still reach the port's own
socket (rejected while the latch is fresh, latched when it is stale or after a
new SDP), RTP still leaves from the leg's port, and closing a session leaves
no socket on its ports. Same harness as test_relay.py (stdlib loop and uvloop).
"""

from __future__ import annotations

import select
import socket
from typing import Any

import pytest

from pbx.media.relay import Leg, Relay, RelaySession
from tests.integration.test_relay import FakeClock, Phone, make_relay, phone, quiet, rtp, run
from tests.integration.test_relay import until as until_done

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not hasattr(select, "epoll"), reason="the epoll reader is Linux-only"),
]
__all__ = ["run"]  # the loop fixture, parametrised over asyncio and uvloop


async def latched_call(relay: Relay) -> tuple[RelaySession, Phone, Phone]:
    session = await relay.open_session("twin")
    a, b = await phone(), await phone()
    session.set_remote(Leg.A, "127.0.0.1", a.port)
    session.set_remote(Leg.B, "127.0.0.1", b.port)
    la, lb = session.local(Leg.A), session.local(Leg.B)
    a.send(rtp(1), "127.0.0.1", la.rtp)
    assert await b.recv() == (rtp(1), ("127.0.0.1", lb.rtp))
    b.send(rtp(2), "127.0.0.1", lb.rtp)
    assert await a.recv() == (rtp(2), ("127.0.0.1", la.rtp))
    return session, a, b


def twin_peer(session: RelaySession, leg: Leg) -> Any:
    twin = session._legs[leg].rtp._twin
    return None if twin is None else twin.getpeername()


def test_a_latched_phone_is_answered_through_a_twin_on_the_same_port(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session, a, b = await latched_call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        assert twin_peer(session, Leg.A) == ("127.0.0.1", a.port)
        assert twin_peer(session, Leg.B) == ("127.0.0.1", b.port)
        assert session._legs[Leg.B].rtp._to == 0  # B's packets go out by the twin's send
        for seq in range(3, 8):  # both ways, from the legs' own ports (symmetric RTP)
            a.send(rtp(seq), "127.0.0.1", la.rtp)
            assert await b.recv() == (rtp(seq), ("127.0.0.1", lb.rtp))
            b.send(rtp(seq), "127.0.0.1", lb.rtp)
            assert await a.recv() == (rtp(seq), ("127.0.0.1", la.rtp))
        stranger = await phone()
        stranger.send(rtp(99), "127.0.0.1", la.rtp)  # reaches the port's own socket
        await until_done(lambda: session.stats(Leg.A).rejected == 1)
        await quiet(b)
        stats = session.stats(Leg.A)
        assert (stats.packets_in, stats.packets_out, stats.latched) == (6, 6, ("127.0.0.1", a.port))
        assert session._legs[Leg.A].rtcp._twin is None  # RTCP: a few packets a second, no twin
        await relay.aclose()

    run(body)


def test_the_twin_follows_a_relatch_after_the_latch_goes_stale(run: Any) -> None:
    async def body() -> None:
        clock = FakeClock()
        relay = make_relay(clock)
        session, a, b = await latched_call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        moved = await phone()
        relay.sweep(1001.0)
        relay.sweep(1006.0)  # 5 s without packets from A: the latch is stale
        moved.send(rtp(3), "127.0.0.1", la.rtp)  # NAT rebinding: a new source port
        assert await b.recv() == (rtp(3), ("127.0.0.1", lb.rtp))
        assert twin_peer(session, Leg.A) == ("127.0.0.1", moved.port)
        b.send(rtp(4), "127.0.0.1", lb.rtp)
        assert await moved.recv() == (rtp(4), ("127.0.0.1", la.rtp))
        await quiet(a)
        a.send(rtp(5), "127.0.0.1", la.rtp)  # the old address is now the stranger
        await until_done(lambda: session.stats(Leg.A).rejected == 1)
        await quiet(b)
        await relay.aclose()

    run(body)


def test_a_new_sdp_releases_the_latch_and_the_twin_does_not_hold_it(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        session, a, b = await latched_call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        other = await phone()
        session.set_remote(Leg.A, "127.0.0.1", other.port)  # re-INVITE: A moves
        assert session._legs[Leg.B].rtp._to == ("127.0.0.1", other.port)  # not by the twin
        b.send(rtp(3), "127.0.0.1", lb.rtp)  # to the new SDP address until A latches
        assert await other.recv() == (rtp(3), ("127.0.0.1", la.rtp))
        other.send(rtp(4), "127.0.0.1", la.rtp)  # the first source after the new SDP latches
        assert await b.recv() == (rtp(4), ("127.0.0.1", lb.rtp))
        assert session.stats(Leg.A).latched == ("127.0.0.1", other.port)
        assert twin_peer(session, Leg.A) == ("127.0.0.1", other.port)
        a.send(rtp(5), "127.0.0.1", la.rtp)
        await until_done(lambda: session.stats(Leg.A).rejected == 1)
        await quiet(b)
        await relay.aclose()

    run(body)


@pytest.mark.parametrize("pool", [0, 64])
def test_closing_the_session_closes_its_twins(run: Any, pool: int) -> None:
    async def body() -> None:
        relay = make_relay(pool=pool)
        session, a, b = await latched_call(relay)
        ports = [session._legs[leg].rtp for leg in Leg]
        la = session.local(Leg.A)
        await session.aclose()
        assert [port._twin for port in ports] == [None, None]
        if pool == 0:  # the port is free again: a plain bind (no SO_REUSEPORT) succeeds
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind(("127.0.0.1", la.rtp))
            probe.close()
        again, a2, b2 = await latched_call(relay)  # a parked pair, if pooled, latches anew
        assert twin_peer(again, Leg.A) == ("127.0.0.1", a2.port)
        await relay.aclose()
        assert twin_peer(again, Leg.A) is None

    run(body)


def test_transports_have_no_twin(run: Any) -> None:
    async def body() -> None:
        relay = make_relay()
        relay.sockets = "transports"
        session, a, b = await latched_call(relay)
        assert twin_peer(session, Leg.A) is None and twin_peer(session, Leg.B) is None
        await relay.aclose()

    run(body)


def test_what_the_old_peer_left_on_the_twin_is_rejected_when_it_relatches(run: Any) -> None:
    async def body() -> None:
        relay = make_relay(FakeClock())
        session, a, b = await latched_call(relay)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        moved = await phone()
        relay.sweep(1001.0)
        relay.sweep(1006.0)  # the latch is stale
        moved.send(rtp(3), "127.0.0.1", la.rtp)  # the port's own socket: re-latches ...
        a.send(rtp(4), "127.0.0.1", la.rtp)  # ... while A's datagram waits on the twin
        assert await b.recv() == (rtp(3), ("127.0.0.1", lb.rtp))
        await until_done(lambda: session.stats(Leg.A).rejected == 1)
        await quiet(b)  # A's datagram did not pass as the new peer's
        stats = session.stats(Leg.A)
        assert (stats.packets_in, stats.latched) == (2, ("127.0.0.1", moved.port))
        await relay.aclose()

    run(body)


class _Sink:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, Any]] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))

    def error_received(self, exc: Exception) -> None:
        raise AssertionError(exc)


def test_the_reader_takes_a_connected_sockets_source_from_its_peer() -> None:
    import asyncio

    from pbx.media.relay_poll import EpollReader

    loop = asyncio.new_event_loop()
    reader = EpollReader(loop)
    sink = _Sink()
    first, second = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for s in (first, second, sock):
            s.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        sock.connect(first.getsockname())
        reader.add_connected(sock, sink, ("peer", 1))
        first.sendto(b"one", sock.getsockname())
        second.sendto(b"stranger", sock.getsockname())  # the kernel drops it: not the peer
        assert reader._round() == 1
        assert sink.got == [(b"one", ("peer", 1))]
        sock.connect(second.getsockname())
        reader.add_connected(sock, sink, ("peer", 2))  # a new peer: no second registration
        second.sendto(b"two", sock.getsockname())
        assert reader._round() == 1 and reader.watched == 1
        assert sink.got[-1] == (b"two", ("peer", 2))
    finally:
        reader.remove(sock)
        reader.close()
        for s in (first, second, sock):
            s.close()
        loop.close()


def test_no_twin_past_half_the_fd_limit(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from pbx.media import relay_port

    async def body() -> None:
        relay = make_relay()
        first, a, b = await latched_call(relay)  # 4 sockets in the set, then 2 twins
        assert relay._reader is not None and relay._reader.watched == 6
        monkeypatch.setattr(relay_port, "twin_budget", lambda: 10)  # 6 + 4 new: no room left
        second, c, d = await latched_call(relay)  # forwards without twins
        assert twin_peer(second, Leg.A) is None and twin_peer(second, Leg.B) is None
        assert relay._reader.watched == 10
        c.send(rtp(3), "127.0.0.1", second.local(Leg.A).rtp)
        assert await d.recv() == (rtp(3), ("127.0.0.1", second.local(Leg.B).rtp))
        assert twin_peer(first, Leg.A) == ("127.0.0.1", a.port)  # the first call keeps its own
        await relay.aclose()

    run(body)


def test_the_budget_is_half_the_soft_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from pbx.media import relay_port

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 4096))
    assert relay_port.twin_budget() == 512
