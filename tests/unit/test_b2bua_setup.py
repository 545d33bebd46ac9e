"""B2BUA call setup edge cases, with fakes for the relay and the SIP endpoint (no sockets)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pbx.b2bua import B2bua, _is_x_header
from pbx.call import CallState
from pbx.config import PbxConfig
from pbx.sip.events import RequestReceived
from pbx.sip.message import Request, Response
from pbx.sip.transaction import ServerKey
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

    async def open_session(
        self, label: str, family_a: int, family_b: int, *, quality: bool = False
    ) -> FakeSession:
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


class RecordingEndpoint:
    def __init__(self) -> None:
        self.responses: list[Response] = []

    def now(self) -> float:
        return 0.0

    def send_response(self, tx, response: Response) -> None:  # type: ignore[no-untyped-def]
        self.responses.append(response)


def request(method: str, to_tag: str | None = None) -> Request:
    to = "<sip:1002@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return Request(method, "sip:1002@127.0.0.1", [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-7"),
        ("From", "<sip:1001@127.0.0.1>;tag=a"),
        ("To", to),
        ("Call-ID", "c7@test"),
        ("CSeq", f"1 {method}"),
    ])  # fmt: skip


def received(req: Request) -> RequestReceived:
    return RequestReceived(req, ServerKey("z9hG4bK-7", ("127.0.0.1", 5070), req.method),
                           ("127.0.0.1", 5070), "UDP")  # fmt: skip


def make_b2bua(endpoint: RecordingEndpoint) -> B2bua:
    return B2bua(endpoint, None, None, None, None,  # type: ignore[arg-type]
                 PbxConfig(data_dir=Path("/nonexistent")))  # fmt: skip


def test_a_bug_while_handling_a_request_still_answers_it_with_500():
    endpoint = RecordingEndpoint()
    b2bua = make_b2bua(endpoint)

    def broken(ev: RequestReceived) -> None:
        raise RuntimeError("a bug")

    b2bua._on_invite = broken  # type: ignore[method-assign]
    b2bua.on_request(received(request("INVITE")))
    assert [(r.status, r.reason) for r in endpoint.responses] == [(500, "Server Internal Error")]


def test_requests_outside_any_dialog_get_481_or_501():
    endpoint = RecordingEndpoint()
    b2bua = make_b2bua(endpoint)
    for req in (request("BYE"), request("INFO"), request("UPDATE"), request("MESSAGE"),
                request("BYE", to_tag="gone")):  # fmt: skip
        b2bua.on_request(received(req))
    assert [r.status for r in endpoint.responses] == [481, 481, 481, 501, 481]


def test_a_failing_call_observer_never_breaks_the_call():
    seen: list[str] = []

    def broken(call) -> None:  # type: ignore[no-untyped-def]
        seen.append(call.label)
        raise RuntimeError("observer bug")

    B2bua._notify(broken, make_call())
    B2bua._notify(None, make_call())
    assert seen == ["label"]
