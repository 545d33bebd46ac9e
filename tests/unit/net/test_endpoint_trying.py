"""SipEndpoint hands the core's events to the TU before it sends what the core queued, so a
TU that answers a new INVITE at once sends no 100 Trying (RFC 3261 17.2.1), and one that
answers later still gets the 100 out in the same turn. No sockets: sends are recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from pbx.net.transport import SipEndpoint
from pbx.sip.core import SipCore
from pbx.sip.events import Event, RequestReceived
from tests.unit.sip.test_transaction_support import ALICE, BOB, CONFIG, make_request


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _endpoint(
    loop: asyncio.AbstractEventLoop, answer: Callable[[SipEndpoint, RequestReceived], None]
) -> tuple[SipEndpoint, list[tuple[bytes, tuple[str, int]]]]:
    sent: list[tuple[bytes, tuple[str, int]]] = []

    def handler(event: Event) -> None:
        if isinstance(event, RequestReceived) and event.tx is not None:
            answer(endpoint, event)

    endpoint = SipEndpoint(loop, SipCore(CONFIG), handler, listen=())

    def send(data: bytes, destination: tuple[str, int], transport: str, conn_id=None,
             on_error=None) -> None:  # fmt: skip
        sent.append((data.split(b"\r\n", 1)[0], destination))

    endpoint.transports.send = send  # type: ignore[method-assign]
    return endpoint, sent


def test_an_invite_answered_at_once_gets_only_the_answer(loop: asyncio.AbstractEventLoop) -> None:
    def challenge(endpoint: SipEndpoint, event: RequestReceived) -> None:
        endpoint.send_response(event.tx, event.request.make_response(407, to_tag="pbx1"))

    endpoint, sent = _endpoint(loop, challenge)
    endpoint._data(bytes(make_request("INVITE")), ALICE, "UDP", None)
    assert sent == [(b"SIP/2.0 407 Proxy Authentication Required", ALICE)]
    endpoint.timers.close()


def test_an_invite_left_waiting_gets_a_100_before_the_tus_request(
    loop: asyncio.AbstractEventLoop,
) -> None:
    def fork(endpoint: SipEndpoint, event: RequestReceived) -> None:
        endpoint.core.send_request(make_request("INVITE", branch="z9hG4bKleg2"), BOB, "UDP", 0.0)

    endpoint, sent = _endpoint(loop, fork)
    endpoint._data(bytes(make_request("INVITE")), ALICE, "UDP", None)
    assert sent == [
        (b"SIP/2.0 100 Trying", ALICE),
        (b"INVITE sip:bob@127.0.0.1:5070 SIP/2.0", BOB),
    ]
    endpoint.timers.close()
