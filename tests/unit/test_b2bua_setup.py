"""B2BUA call setup edge cases, with fakes for the relay and the SIP endpoint (no sockets)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbx.b2bua import B2bua, _is_x_header
from pbx.call import CallState
from pbx.config import PbxConfig
from tests.unit.test_call import make_call


class FakeSession:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeRelay:
    """open_session() runs `during` while "binding ports", like a CANCEL arriving meanwhile."""

    def __init__(self, during) -> None:  # type: ignore[no-untyped-def]
        self.during = during
        self.sessions: list[FakeSession] = []

    async def open_session(self, label: str, family_a: int, family_b: int) -> FakeSession:
        await asyncio.sleep(0)
        self.during()
        session = FakeSession()
        self.sessions.append(session)
        return session


class NoEndpoint:
    """Any use of the endpoint fails the test: nothing may be sent for an ended call."""

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        raise AssertionError(f"endpoint.{name} used")


def test_ports_bound_for_a_call_cancelled_meanwhile_are_freed_and_nothing_is_sent():
    call = make_call()

    def cancel() -> None:
        call.state = CallState.ENDED  # what _fail/_finish leave behind

    relay = FakeRelay(cancel)
    b2bua = B2bua(
        NoEndpoint(),  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        auth=None,  # type: ignore[arg-type]
        relay=relay,  # type: ignore[arg-type]
        faces=None,  # type: ignore[arg-type]
        config=PbxConfig(data_dir=Path("/nonexistent")),
    )
    asyncio.run(b2bua._setup(call, bindings=[]))
    [session] = relay.sessions
    assert session.closed
    assert call.relay is None and call.forks == {} and call.timers == []


def test_x_headers_are_recognised_in_any_letter_case():
    assert [_is_x_header(n) for n in ("X-Call-Type", "x-sign-id", "X-", "Xylophone", "To")] == [
        True, True, True, False, False,
    ]  # fmt: skip
