"""The media watch (pbx.b2bua_media): silent phones end their calls, on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from pbx.b2bua_media import MediaWatch
from pbx.call import Call, CallState, Side
from pbx.media.relay import Leg
from pbx.sip.sdp import SessionDescription
from pbx.store import HangupSide
from tests.unit.test_call import make_call


@dataclass
class Counts:
    packets_in: int = 0
    rtcp_packets_in: int = 0


@dataclass
class CountingRelay:
    legs: dict[Leg, Counts] = field(default_factory=lambda: {Leg.A: Counts(), Leg.B: Counts()})

    def stats(self, leg: Leg) -> Counts:
        return self.legs[leg]


class FakeB2bua:
    def __init__(self, *calls: Call) -> None:
        self.calls = {call.label: call for call in calls}
        self.hangups: list[tuple[str, Side, HangupSide]] = []

    def _hangup(self, call: Call, side: Side, who: HangupSide) -> None:
        self.hangups.append((call.label, side, who))
        del self.calls[call.label]


def connected(label: str = "call-1") -> tuple[Call, CountingRelay]:
    call = make_call(label=label)
    call.state = CallState.CONNECTED
    relay = CountingRelay()
    call.relay = relay  # type: ignore[assignment]
    return call, relay


def test_a_phone_silent_for_the_timeout_ends_its_call_as_the_system():
    call, relay = connected()
    b2bua = FakeB2bua(call)
    watch = MediaWatch(b2bua, timeout=60.0)  # type: ignore[arg-type]
    for now in (0.0, 5.0, 10.0, 55.0):
        relay.legs[Leg.A].packets_in += 250  # the caller talks; the callee has gone quiet
        assert watch.check(now) == []
    relay.legs[Leg.A].packets_in += 250
    assert watch.check(60.0) == [call]  # the callee's count has not moved since 0 s
    assert b2bua.hangups == [("call-1", Side.B, HangupSide.SYSTEM)]
    assert watch.ended == 1 and watch.check(65.0) == []


def test_rtcp_alone_keeps_a_phone_alive():
    call, relay = connected()
    b2bua = FakeB2bua(call)
    watch = MediaWatch(b2bua, timeout=60.0)  # type: ignore[arg-type]
    for now in range(0, 300, 5):
        relay.legs[Leg.A].packets_in += 250
        relay.legs[Leg.B].rtcp_packets_in += 1  # silence suppression, reports still coming
        assert watch.check(float(now)) == []


def hold(call: Call, side: Side, direction: str) -> None:
    call.last_sdp[side] = SessionDescription.parse(
        "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        f"m=audio 4000 RTP/AVP 8\r\na={direction}\r\n"
    )


def test_a_call_on_hold_is_left_alone_and_its_clock_starts_again_on_resume():
    call, relay = connected()
    b2bua = FakeB2bua(call)
    watch = MediaWatch(b2bua, timeout=60.0)  # type: ignore[arg-type]
    watch.check(0.0)
    hold(call, Side.A, "sendonly")  # on hold: the held phone may send nothing at all
    assert watch.check(100.0) == [] and watch.check(500.0) == []
    hold(call, Side.A, "sendrecv")  # resumed at 500 s: a fresh minute from here
    assert watch.check(505.0) == [] and watch.check(560.0) == []
    assert watch.check(566.0) == [call]


def test_calls_not_yet_connected_are_not_watched_and_zero_turns_the_watch_off():
    ringing, _ = connected()
    ringing.state = CallState.RINGING
    b2bua = FakeB2bua(ringing)
    watch = MediaWatch(b2bua, timeout=60.0)  # type: ignore[arg-type]
    assert watch.check(0.0) == [] and watch.check(1000.0) == []
    off = MediaWatch(b2bua, timeout=0.0)  # type: ignore[arg-type]
    off.start()  # no loop needed: nothing is scheduled
    assert not off.looks.running


def test_the_watch_forgets_calls_that_ended():
    first, _ = connected("call-1")
    second, relay = connected("call-2")
    b2bua = FakeB2bua(first, second)
    watch = MediaWatch(b2bua, timeout=60.0)  # type: ignore[arg-type]
    watch.check(0.0)
    del b2bua.calls["call-1"]
    relay.legs[Leg.A].packets_in = relay.legs[Leg.B].packets_in = 10
    watch.check(5.0)
    assert {label for label, _ in watch._seen} == {"call-2"}
