"""Session timers on the B2BUA's dialogs (pbx.b2bua_session), with a fake B2BUA and clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from pbx.b2bua_session import SessionTimers
from pbx.call import Side
from pbx.sip.dialog import DialogId
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.session_timer import Agreed, Refresher, SessionTimer
from pbx.store import HangupSide

DIALOG = DialogId("st-call@192.0.2.1", "ours", "theirs")


@dataclass
class FakeSip:
    clock: float = 0.0
    sent: list[Request] = field(default_factory=list)

    def now(self) -> float:
        return self.clock

    def send_request(self, request: Request, hop: object) -> str:
        self.sent.append(request)
        return f"tx-{len(self.sent)}"


class FakeDialog:
    id = DIALOG

    def create_request(self, method: str, *, headers=()) -> Request:  # type: ignore[no-untyped-def]
        request = message(f"{method} sip:1001@192.0.2.1 SIP/2.0", f"CSeq: 7 {method}",
                          "Max-Forwards: 70", *(f"{n}: {v}" for n, v in headers))  # fmt: skip
        assert isinstance(request, Request)
        return request


def message(first: str, *headers: str) -> Request | Response:
    """A message of this dialog (our tag "ours", the phone's "theirs")."""
    lines = [first, "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx",
             "From: <sip:pbx@192.0.2.10>;tag=ours", "To: <sip:1001@192.0.2.1>;tag=theirs",
             f"Call-ID: {DIALOG.call_id}", *headers, "Content-Length: 0"]  # fmt: skip
    return parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())


class FakeCall:
    label = "call-1"
    ended = False
    a_dialog = FakeDialog()
    b_dialog = None

    def dialog(self, side: Side) -> FakeDialog | None:
        return self.a_dialog if side is Side.A else None

    def peer(self, side: Side) -> object:
        return SimpleNamespace(destination=("192.0.2.1", 5060), transport="UDP")


class FakeB2bua:
    def __init__(self) -> None:
        self.sip = FakeSip()
        self.call = FakeCall()
        self._by_dialog = {DIALOG: (self.call, Side.A)}
        self.hangups: list[tuple[str, Side, HangupSide]] = []

    def _hangup(self, call: FakeCall, side: Side, who: HangupSide) -> None:
        self.hangups.append((call.label, side, who))
        call.ended = True


def answer(*headers: str) -> Response:
    response = message("SIP/2.0 200 OK", "CSeq: 7 UPDATE", *headers)
    assert isinstance(response, Response)
    return response


def timers_with(agreed: Agreed) -> tuple[SessionTimers, FakeB2bua]:
    b2bua = FakeB2bua()
    timers = SessionTimers(b2bua, min_se=90)  # type: ignore[arg-type]
    timers.timers[DIALOG] = SessionTimer(agreed, now=0.0)
    return timers, b2bua


def test_a_peer_that_stops_refreshing_has_its_call_hung_up_once_as_the_system():
    timers, b2bua = timers_with(Agreed(1800, Refresher.THEM))
    assert timers.check(1767.0) == [] and b2bua.sip.sent == []  # we never refresh for it
    assert timers.check(1768.0) == [b2bua.call]
    assert b2bua.hangups == [("call-1", Side.A, HangupSide.SYSTEM)]
    assert timers.ended == 1 and timers.timers == {} and timers.check(1800.0) == []


def test_when_we_refresh_an_update_without_a_body_goes_out_at_half_time_and_its_2xx_renews():
    timers, b2bua = timers_with(Agreed(90, Refresher.US))
    timers.check(44.0)
    assert b2bua.sip.sent == []
    timers.check(45.0)
    timers.check(46.0)  # one refresh out at a time
    [update] = b2bua.sip.sent
    assert update.method == "UPDATE" and not update.body
    assert update.headers.get("Session-Expires") == "90;refresher=uac"
    assert update.headers.get("Supported") == "timer"
    b2bua.sip.clock = 46.0
    timers.on_answer(answer("Session-Expires: 90;refresher=uac"))
    assert timers.check(100.0) == []  # renewed at 46: good until 46 + 60
    assert timers.check(106.0) == [b2bua.call]


def test_a_2xx_without_session_expires_stops_the_timer_the_peer_kept():
    timers, b2bua = timers_with(Agreed(1800, Refresher.THEM))
    timers.on_answer(answer())
    assert timers.timers == {}
    assert timers.check(10_000.0) == [] and b2bua.hangups == []


def test_a_peer_without_timer_support_answers_our_refresh_plainly_and_stays_watched():
    timers, b2bua = timers_with(Agreed(90, Refresher.US))
    timers.check(45.0)
    b2bua.sip.clock = 45.5
    timers.on_answer(answer())  # 200 with no Session-Expires: it knows nothing of timers
    timers.check(90.5)
    assert len(b2bua.sip.sent) == 2  # the next refresh, half an interval on
    assert timers.check(105.5) == [b2bua.call]  # that one unanswered: the session ran out


def test_a_2xx_can_hand_the_refreshing_over():
    timers, b2bua = timers_with(Agreed(1800, Refresher.THEM))
    assert timers.request_headers(DIALOG) == [
        ("Session-Expires", "1800;refresher=uas"), ("Supported", "timer")
    ]  # fmt: skip
    b2bua.sip.clock = 10.0
    timers.on_answer(answer("Session-Expires: 600;refresher=uac"))  # we, its UAC, refresh now
    assert timers.timers[DIALOG].agreed == Agreed(600, Refresher.US)
    assert timers.request_headers(DialogId("other", "a", "b")) == []


def test_a_dialog_that_left_its_call_drops_its_timer():
    timers, b2bua = timers_with(Agreed(90, Refresher.THEM))
    del b2bua._by_dialog[DIALOG]
    assert timers.check(1000.0) == [] and timers.timers == {} and b2bua.hangups == []
