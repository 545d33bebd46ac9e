"""In-dialog OPTIONS pings of connected calls (pbx.b2bua_ping), with a fake B2BUA."""

from __future__ import annotations

from types import SimpleNamespace

from pbx.b2bua_ping import DialogPing
from pbx.call import CallState, Side
from pbx.sip.errors import LocalProtocolError
from pbx.sip.message import Response
from pbx.store import HangupSide


class FakeDialog:
    def __init__(self, ending: bool = False) -> None:
        self.ending = ending

    def create_request(self, method: str) -> str:
        if self.ending:
            raise LocalProtocolError("terminated")
        return method


class FakeCall:
    def __init__(self, label: str, state: CallState = CallState.CONNECTED) -> None:
        self.label, self.state, self.ended = label, state, False
        self.dialogs = {Side.A: FakeDialog(), Side.B: FakeDialog()}

    def dialog(self, side: Side) -> FakeDialog:
        return self.dialogs[side]

    def peer(self, side: Side) -> object:
        return SimpleNamespace(destination=("192.0.2.1", 5060), transport="UDP")


class FakeB2bua:
    def __init__(self, *calls: FakeCall) -> None:
        self.calls = {call.label: call for call in calls}
        self.hangups: list[tuple[str, Side, HangupSide]] = []
        self.sip = self
        self.sent: list[str] = []

    def send_request(self, request: str, hop: object) -> str:
        self.sent.append(request)
        return f"tx-{len(self.sent)}"

    def _hangup(self, call: FakeCall, side: Side, who: HangupSide) -> None:
        self.hangups.append((call.label, side, who))
        call.ended = True
        del self.calls[call.label]


def pinger(*calls: FakeCall) -> tuple[DialogPing, FakeB2bua]:
    b2bua = FakeB2bua(*calls)
    return DialogPing(b2bua, interval=30.0), b2bua  # type: ignore[arg-type]


def test_both_legs_of_connected_calls_are_pinged_once_until_they_answer():
    ping, b2bua = pinger(FakeCall("up"), FakeCall("ringing", CallState.RINGING))
    assert ping.ping() == 2 and b2bua.sent == ["OPTIONS", "OPTIONS"]
    assert list(ping.pending.values()) == [("up", Side.A), ("up", Side.B)]
    assert ping.ping() == 0  # both still in flight
    ping.on_response("tx-1", Response(200))  # type: ignore[arg-type]
    assert ping.ping() == 1 and b2bua.hangups == []


def test_any_answer_but_481_shows_the_phone_holds_the_call():
    ping, b2bua = pinger(FakeCall("up"))
    ping.ping()
    ping.on_response("tx-1", Response(100))  # type: ignore[arg-type]
    assert "tx-1" in ping.pending  # a provisional answer is not the answer
    ping.on_response("tx-1", Response(405))  # type: ignore[arg-type]
    ping.on_response("tx-2", Response(501))  # type: ignore[arg-type]
    assert b2bua.hangups == [] and ping.ended == 0 and ping.pending == {}


def test_a_481_ends_the_call_on_both_legs_as_the_system():
    ping, b2bua = pinger(FakeCall("up"))
    ping.ping()
    [(tx_b, _)] = [(tx, key) for tx, key in ping.pending.items() if key[1] is Side.B]
    ping.on_response(tx_b, Response(481))  # type: ignore[arg-type]
    assert b2bua.hangups == [("up", Side.B, HangupSide.SYSTEM)] and ping.ended == 1


def test_no_answer_at_all_ends_the_call_and_a_late_answer_changes_nothing():
    call = FakeCall("up")
    ping, b2bua = pinger(call)
    ping.ping()
    ping.on_response("tx-1", None)  # Timer F
    assert b2bua.hangups == [("up", Side.A, HangupSide.SYSTEM)]
    ping.forget(call)  # the B2BUA's _finish
    assert ping.pending == {} and ping.ended == 1


def test_a_dialog_that_is_ending_is_not_pinged():
    call = FakeCall("up")
    call.dialogs[Side.A] = FakeDialog(ending=True)
    ping, b2bua = pinger(call)
    assert ping.ping() == 1 and list(ping.pending.values()) == [("up", Side.B)]
