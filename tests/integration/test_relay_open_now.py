"""Relay.open_session_now: a call's ports taken without a coroutine (pbx.media.relay).

The B2BUA forks a callee's INVITE while it handles the caller's (no task per call) when the
relay binds through its epoll reader; with sockets="transports" binding has to await, so
open_session_now answers None and the B2BUA falls back to `await open_session()`. Real
sockets on 127.0.0.1 (ports 47400-47449), stdlib loop and uvloop.
"""

from __future__ import annotations

import select
import socket

import pytest

from pbx.media.ports import PortAllocator
from pbx.media.relay import Leg, Relay
from pbx.media.rtp import RtpPacket
from tests.integration.test_relay import FakeClock, Phone, phone, rtp, run, until

pytestmark = pytest.mark.integration
__all__ = ["run"]  # the loop fixture, parametrised over asyncio and uvloop

LOW, HIGH = 47400, 47449
needs_epoll = pytest.mark.skipif(not hasattr(select, "epoll"), reason="select.epoll is Linux-only")


def make_relay(sockets: str) -> Relay:
    return Relay(PortAllocator(LOW, HIGH), bind_v4="127.0.0.1", bind_v6="::1",
                 clock=FakeClock(), sockets=sockets, sweep_interval=3600.0)  # fmt: skip


def _port(p: Phone) -> int:
    assert p.transport is not None
    return int(p.transport.get_extra_info("sockname")[1])


@needs_epoll
def test_open_session_now_binds_both_legs_at_once_and_relays(run) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        relay = make_relay("epoll")
        session = relay.open_session_now("now-1")
        assert session is not None and relay.open_sessions == 1
        a_port, b_port = session.local(Leg.A).rtp, session.local(Leg.B).rtp
        assert LOW <= a_port <= HIGH and LOW <= b_port <= HIGH and a_port != b_port
        a, b = await phone(), await phone()
        session.set_remote(Leg.A, "127.0.0.1", _port(a))
        session.set_remote(Leg.B, "127.0.0.1", _port(b))
        assert a.transport is not None and b.transport is not None
        a.transport.sendto(rtp(1), ("127.0.0.1", a_port))
        await until(lambda: not b.queue.empty())
        data, _ = b.queue.get_nowait()
        assert RtpPacket.parse(data).sequence == 1
        session.close()
        assert relay.open_sessions == 0
        # the closed legs are parked: the next session takes them without binding again
        again = relay.open_session_now("now-2")
        assert again is not None
        assert {again.local(Leg.A).rtp, again.local(Leg.B).rtp} == {a_port, b_port}
        again.close()
        a.transport.close()
        b.transport.close()
        await relay.aclose()

    run(body)


def test_open_session_now_leaves_transport_bound_relays_to_the_coroutine(run) -> None:  # type: ignore[no-untyped-def]
    async def body() -> None:
        relay = make_relay("transports")
        assert relay.open_session_now("later") is None
        assert relay.open_sessions == 0 and relay.ports.in_use == 0
        session = await relay.open_session("later", socket.AF_INET, socket.AF_INET)
        assert relay.open_sessions == 1 and relay.ports.in_use == 2
        session.close()
        await relay.aclose()

    run(body)
