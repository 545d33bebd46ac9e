"""Transfers a phone asks for with REFER, through a real DeskPBX on 127.0.0.1.

Three headless UAs register as 1001 (A), 1002 (B) and 1003 (C). A calls B;
one of them blind-transfers the other to C with REFER. The PBX answers 202,
reports progress by NOTIFY (sipfrag 100, then the target's final answer),
connects the transferee with C through the relay (tones checked by FFT) and
ends the referrer's leg; the CDRs show the original call ended by the
referrer and the transferred call as its own row. An unknown target gets a
404 NOTIFY and the call goes on.
"""

from __future__ import annotations

import asyncio

import pytest

from pbx.store import Disposition, HangupSide
from pbx.ua import (
    AudioPort,
    CallState,
    FrameRecorder,
    IncomingCall,
    RegistrationState,
    ToneSource,
    TransferProgress,
    dominant_frequency,
)
from tests.integration.pbx_harness import start_pbx
from tests.integration.test_ua_support import Phone, start_phone

pytestmark = pytest.mark.integration
TONES = {"1001": 440.0, "1002": 1000.0, "1003": 1500.0}


@pytest.fixture
def pbx(tmp_path):
    running = start_pbx(tmp_path / "pbx", min_expires=1)
    yield running
    running.stop()


class Party:
    """A phone with a tone of its own and a recorder of what it hears."""

    def __init__(self, phone: Phone, number: str) -> None:
        self.phone, self.number = phone, number
        self.heard = FrameRecorder()
        self.audio = AudioPort(ToneSource(TONES[number]), self.heard)

    def hears(self) -> float:
        samples = self.heard.samples()
        assert samples.size >= 4000, f"{self.number} heard only {samples.size} samples"
        return dominant_frequency(samples[-2400:])


async def _parties(pbx, *numbers: str) -> list[Party]:
    parties = []
    for number in numbers:
        phone = await start_phone(number, pbx.port)
        event = await phone.ua.register(expires=120)
        assert (event.state, event.status) == (RegistrationState.REGISTERED, 200)
        parties.append(Party(phone, number))
    return parties


async def _answer_next(party: Party, count: int = 1):
    """Answer the `count`-th incoming call of `party` with its tone."""
    phone = party.phone
    incoming = await phone.wait_event(
        IncomingCall, lambda e: len(phone.of(IncomingCall)) >= count and
        e is phone.of(IncomingCall)[count - 1],
    )  # fmt: skip
    incoming.call.set_source(party.audio.source)
    incoming.call.set_sink(party.audio.sink)
    await incoming.call.answer()
    return incoming.call


async def _a_calls_b(a: Party, b: Party):
    call = await a.phone.ua.call("1002", audio=a.audio)
    answered = await _answer_next(b)
    assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
    return call, answered


async def _progress(party: Party, final: bool = True) -> list[int]:
    await party.phone.wait_event(TransferProgress, lambda e: (e.status >= 200) == final, timeout=10)
    return [e.status for e in party.phone.of(TransferProgress)]


async def _close(*parties: Party) -> None:
    for party in parties:
        await party.phone.ua.aclose()


async def test_callee_transfers_the_caller_to_a_third_phone(pbx):
    a, b, c = await _parties(pbx, "1001", "1002", "1003")
    a_call, b_call = await _a_calls_b(a, b)
    await asyncio.sleep(0.5)
    assert abs(a.hears() - 1000.0) < 10  # A hears B before the transfer
    assert await b_call.transfer("1003") == 202
    c_call = await _answer_next(c)
    assert await _progress(b) == [100, 200]
    assert await b_call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    assert b_call.reason == "remote hangup"  # the PBX ended the referrer's leg
    # A hears C and C hears A through the same relay ports: A needed no re-INVITE.
    await asyncio.sleep(1.2)
    assert a_call.state is CallState.CONNECTED
    assert abs(a.hears() - 1500.0) < 10
    assert abs(c.hears() - 440.0) < 10
    await a_call.hangup()
    assert await c_call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    first, second = sorted(pbx.wait_cdrs(2), key=lambda r: r.start)
    assert (first.caller, first.callee, first.disposition) == ("1001", "1002", Disposition.ANSWERED)
    assert first.hangup_side is HangupSide.CALLEE  # B, the referrer, left the call
    assert (second.caller, second.callee, second.disposition) == (
        "1001",
        "1003",
        Disposition.ANSWERED,
    )
    assert second.hangup_side is HangupSide.CALLER
    assert second.start >= first.start and second.answer is not None
    assert set(pbx.run(pbx.pbx.b2bua.table_sizes).values()) == {0}
    await _close(a, b, c)


async def test_caller_transfers_the_callee_to_a_third_phone(pbx):
    a, b, c = await _parties(pbx, "1001", "1002", "1003")
    a_call, b_call = await _a_calls_b(a, b)
    assert await a_call.transfer("1003") == 202
    c_call = await _answer_next(c)
    assert await _progress(a) == [100, 200]
    assert await a_call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    await asyncio.sleep(1.2)
    assert b_call.state is CallState.CONNECTED
    assert abs(b.hears() - 1500.0) < 10  # B now hears C
    assert abs(c.hears() - 1000.0) < 10  # and C hears B
    await c_call.hangup()
    assert await b_call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    first, second = sorted(pbx.wait_cdrs(2), key=lambda r: r.start)
    assert (first.caller, first.callee) == ("1001", "1002")
    assert first.hangup_side is HangupSide.CALLER  # A, the referrer
    assert (second.caller, second.callee, second.disposition) == (
        "1002",
        "1003",
        Disposition.ANSWERED,
    )
    assert set(pbx.run(pbx.pbx.b2bua.table_sizes).values()) == {0}
    await _close(a, b, c)


async def test_unknown_target_is_reported_404_and_the_call_goes_on(pbx):
    a, b = await _parties(pbx, "1001", "1002")
    a_call, b_call = await _a_calls_b(a, b)
    assert await b_call.transfer("1999") == 202
    assert await _progress(b) == [100, 404]
    await asyncio.sleep(1.0)
    assert (a_call.state, b_call.state) == (CallState.CONNECTED, CallState.CONNECTED)
    assert abs(a.hears() - 1000.0) < 10 and abs(b.hears() - 440.0) < 10
    assert pbx.cdrs() == []  # the call is not over
    await b_call.hangup()
    assert await a_call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.callee, cdr.hangup_side) == ("1002", HangupSide.CALLEE)
    await _close(a, b)


async def test_target_that_rejects_is_reported_and_the_call_goes_on(pbx):
    a, b, c = await _parties(pbx, "1001", "1002", "1003")
    a_call, b_call = await _a_calls_b(a, b)
    assert await b_call.transfer("1003") == 202
    incoming = await c.phone.wait_event(IncomingCall)
    await incoming.call.reject(486)
    assert await _progress(b) == [100, 486]
    await asyncio.sleep(0.2)
    assert (a_call.state, b_call.state) == (CallState.CONNECTED, CallState.CONNECTED)
    await a_call.hangup()
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.caller, cdr.callee, cdr.hangup_side) == ("1001", "1002", HangupSide.CALLER)
    assert set(pbx.run(pbx.pbx.b2bua.table_sizes).values()) == {0}
    await _close(a, b, c)


async def test_attended_transfer_bridges_the_two_remaining_parties(pbx):
    a, b, c = await _parties(pbx, "1001", "1002", "1003")
    a_call, b_call = await _a_calls_b(a, b)
    b_to_c = await b.phone.ua.call("1003")
    c_call = await _answer_next(c)
    assert await b_to_c.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
    assert await b_call.attended_transfer(b_to_c) == 202
    assert await _progress(b) == [100, 200]
    assert await b_to_c.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    assert await b_call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    await asyncio.sleep(1.2)
    assert (a_call.state, c_call.state) == (CallState.CONNECTED, CallState.CONNECTED)
    assert abs(a.hears() - 1500.0) < 10  # A hears C
    assert abs(c.hears() - 440.0) < 10  # C, re-INVITEd to A's call, hears A
    await c_call.hangup()
    assert await a_call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    rows = sorted(pbx.wait_cdrs(3), key=lambda r: r.start)
    assert [(r.caller, r.callee, r.hangup_side) for r in rows] == [
        ("1001", "1002", HangupSide.CALLEE),  # A-B: B, the referrer, left
        ("1002", "1003", HangupSide.CALLER),  # B-C: B left too
        ("1001", "1003", HangupSide.CALLEE),  # the transferred call: C hung up
    ]
    assert {r.disposition for r in rows} == {Disposition.ANSWERED}
    assert set(pbx.run(pbx.pbx.b2bua.table_sizes).values()) == {0}
    assert pbx.run(lambda: pbx.pbx.b2bua.relay.open_sessions) == 0
    await _close(a, b, c)


async def test_referrer_hanging_up_while_the_target_rings_leaves_the_transfer_going(pbx):
    a, b, c = await _parties(pbx, "1001", "1002", "1003")
    a_call, b_call = await _a_calls_b(a, b)
    assert await b_call.transfer("1003") == 202
    await b_call.hangup()  # as many desk phones do right after the 202
    incoming = await c.phone.wait_event(IncomingCall)
    await asyncio.sleep(0.3)
    assert a_call.state is CallState.CONNECTED  # A waits for C, not hung up
    incoming.call.set_source(c.audio.source)
    incoming.call.set_sink(c.audio.sink)
    await incoming.call.answer()
    await asyncio.sleep(1.2)
    assert abs(a.hears() - 1500.0) < 10 and abs(c.hears() - 440.0) < 10
    await a_call.hangup()
    rows = sorted(pbx.wait_cdrs(2), key=lambda r: r.start)
    assert [(r.caller, r.callee, r.hangup_side) for r in rows] == [
        ("1001", "1002", HangupSide.CALLEE),
        ("1001", "1003", HangupSide.CALLER),
    ]
    assert set(pbx.run(pbx.pbx.b2bua.table_sizes).values()) == {0}
    await _close(a, b, c)


async def test_referrer_gone_and_target_failing_ends_the_transferees_call(pbx):
    a, b, c = await _parties(pbx, "1001", "1002", "1003")
    a_call, b_call = await _a_calls_b(a, b)
    assert await b_call.transfer("1003") == 202
    await b_call.hangup()
    incoming = await c.phone.wait_event(IncomingCall)
    await incoming.call.reject(486)
    assert await a_call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.caller, cdr.callee, cdr.hangup_side) == ("1001", "1002", HangupSide.CALLEE)
    assert set(pbx.run(pbx.pbx.b2bua.table_sizes).values()) == {0}
    await _close(a, b, c)
