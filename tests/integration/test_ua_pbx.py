"""The headless user agent against a real DeskPBX on 127.0.0.1.

Two UAs register as 1001 and 1002; calls go through the PBX's B2BUA and RTP
relay. Each side plays its own sine and records what it hears; an FFT shows
each heard the other. Hold/resume, RFC 4733 and INFO DTMF, reject (486 and
the BUSY CDR), CANCEL, the far end's BYE, refresh and unregister.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pbx.store import Disposition
from pbx.ua import (
    AudioPort,
    CallState,
    CallStateChanged,
    DtmfReceived,
    FrameRecorder,
    HoldChanged,
    IncomingCall,
    RegistrationChanged,
    RegistrationState,
    ToneSource,
    dominant_frequency,
)
from tests.integration.pbx_harness import start_pbx
from tests.integration.test_ua_support import Phone, start_phone

pytestmark = pytest.mark.integration
REGISTERED = RegistrationState.REGISTERED


@pytest.fixture
def pbx(tmp_path):
    running = start_pbx(tmp_path / "pbx", min_expires=1)
    yield running
    running.stop()


async def _two_phones(pbx) -> tuple[Phone, Phone]:
    alice, bob = await start_phone("1001", pbx.port), await start_phone("1002", pbx.port)
    for phone in (alice, bob):
        event = await phone.ua.register(expires=120)
        assert (event.state, event.status, event.expires) == (REGISTERED, 200, 120)
    return alice, bob


async def _connect(alice: Phone, bob: Phone, alice_audio=None, bob_audio=None):
    call = await alice.ua.call("1002", audio=alice_audio)
    incoming = await bob.wait_event(IncomingCall)
    assert incoming.call.state is CallState.RINGING
    if bob_audio is not None:
        incoming.call.set_source(bob_audio.source)
        incoming.call.set_sink(bob_audio.sink)
    await incoming.call.answer()
    assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
    return call, incoming.call


async def _close(*phones: Phone) -> None:
    for phone in phones:
        await phone.ua.aclose()


def _bindings(pbx, extension: str) -> list[str]:
    return pbx.run(lambda: [
        b.contact for b in pbx.pbx.store.active_bindings(pbx.pbx.wall(), extension)
    ])  # fmt: skip


async def test_register_binds_our_contact_and_unregister_removes_it(pbx):
    alice = await start_phone("1001", pbx.port)
    await alice.ua.register(expires=120)
    assert _bindings(pbx, "1001") == [alice.ua.contact_uri]
    event = await alice.ua.unregister()
    assert (event.state, event.status) == (RegistrationState.UNREGISTERED, 200)
    assert _bindings(pbx, "1001") == []
    states = [e.state for e in alice.of(RegistrationChanged)]
    assert states == [
        RegistrationState.REGISTERING, RegistrationState.REGISTERED,
        RegistrationState.UNREGISTERING, RegistrationState.UNREGISTERED,
    ]  # fmt: skip
    await _close(alice)


async def test_wrong_password_fails_registration(pbx):
    alice = await start_phone("1001", pbx.port, password="wrong")
    event = await alice.ua.register(expires=120)
    assert event.state is RegistrationState.FAILED
    assert event.status in (401, 403)
    assert _bindings(pbx, "1001") == []
    await _close(alice)


async def test_registration_is_refreshed_before_it_expires(pbx):
    alice = await start_phone("1001", pbx.port)
    await alice.ua.register(expires=2)  # refreshed after 1 s
    await alice.wait_event(
        RegistrationChanged, lambda e: len(alice.of(RegistrationChanged)) >= 3, timeout=4.0
    )
    registered = [e for e in alice.of(RegistrationChanged) if e.state is REGISTERED]
    assert len(registered) >= 2
    await asyncio.sleep(1.5)  # past the first expiry: still bound thanks to the refresh
    assert _bindings(pbx, "1001") == [alice.ua.contact_uri]
    await _close(alice)
    assert _bindings(pbx, "1001") == []  # aclose unregistered


async def test_each_side_hears_the_others_tone(pbx):
    alice, bob = await _two_phones(pbx)
    heard_by_alice, heard_by_bob = FrameRecorder(), FrameRecorder()
    call, answered = await _connect(
        alice, bob, AudioPort(ToneSource(440.0), heard_by_alice),
        AudioPort(ToneSource(1000.0), heard_by_bob),
    )  # fmt: skip
    await asyncio.sleep(1.2)
    a, b = heard_by_alice.samples(), heard_by_bob.samples()
    assert a.size >= 8000 * 0.6 and b.size >= 8000 * 0.6
    assert abs(dominant_frequency(a[-4000:]) - 1000.0) < 10
    assert abs(dominant_frequency(b[-4000:]) - 440.0) < 10
    assert np.abs(b[-4000:]).max() > 4000  # the tone, not comfort noise
    await call.hangup()
    assert call.state is CallState.ENDED
    assert await answered.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    assert answered.reason == "remote hangup"
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.caller, cdr.callee, cdr.disposition) == ("1001", "1002", Disposition.ANSWERED)
    await _close(alice, bob)


async def test_hold_and_resume_change_the_direction_the_other_side_sees(pbx):
    alice, bob = await _two_phones(pbx)
    call, answered = await _connect(alice, bob)
    await call.hold()
    assert (call.state, call.local_hold) == (CallState.ON_HOLD, True)
    assert call.negotiated is not None and call.negotiated.local.value == "sendonly"
    await bob.wait_event(HoldChanged, lambda e: e.remote)
    assert answered.state is CallState.ON_HOLD and answered.remote_hold
    assert answered.negotiated is not None
    assert answered.negotiated.remote.value == "sendonly"
    assert not answered.negotiated.we_send  # bob stops sending to a holder
    await call.resume()
    await bob.wait_event(HoldChanged, lambda e: not e.remote)
    assert (call.state, answered.state) == (CallState.CONNECTED, CallState.CONNECTED)
    assert answered.negotiated.remote.value == "sendrecv"
    changes = [(e.old, e.new) for e in bob.of(CallStateChanged) if e.call is answered]
    assert (CallState.CONNECTED, CallState.ON_HOLD) in changes
    assert (CallState.ON_HOLD, CallState.CONNECTED) in changes
    await call.hangup()
    await _close(alice, bob)


async def test_rfc4733_dtmf_reaches_the_other_side(pbx):
    alice, bob = await _two_phones(pbx)
    call, answered = await _connect(alice, bob)
    assert call.negotiated is not None and call.negotiated.dtmf_payload_type == 101
    assert await call.send_dtmf("123#") == "rfc4733"
    await bob.wait_event(DtmfReceived, lambda e: len(bob.of(DtmfReceived)) >= 4, timeout=3)
    got = bob.of(DtmfReceived)
    assert "".join(e.digit for e in got) == "123#"
    assert {e.method for e in got} == {"rfc4733"}
    assert all(e.duration_ms == 100 for e in got)
    assert answered.rtp.stats.dtmf_received == 4
    await call.hangup()
    await _close(alice, bob)


async def test_info_dtmf_goes_through_the_pbx_relay(pbx):
    alice, bob = await _two_phones(pbx)
    call, answered = await _connect(alice, bob)
    assert await call.send_dtmf("9*", method="info") == "info"
    await bob.wait_event(DtmfReceived, lambda e: len(bob.of(DtmfReceived)) >= 2)
    assert [(e.digit, e.method) for e in bob.of(DtmfReceived)] == [("9", "info"), ("*", "info")]
    await call.hangup()
    await _close(alice, bob)


async def test_reject_gives_the_caller_486_and_the_cdr_busy(pbx):
    alice, bob = await _two_phones(pbx)
    call = await alice.ua.call("1002")
    incoming = await bob.wait_event(IncomingCall)
    await incoming.call.reject(486)
    assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.ENDED
    assert call.status == 486
    ended = await alice.wait_event(CallStateChanged, lambda e: e.new is CallState.ENDED)
    assert (ended.status, ended.reason) == (486, "Busy Here")
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.BUSY, 486)
    assert alice.ua.calls == [] and bob.ua.calls == []
    await _close(alice, bob)


async def test_hanging_up_while_ringing_cancels_the_call(pbx):
    alice, bob = await _two_phones(pbx)
    call = await alice.ua.call("1002")
    incoming = await bob.wait_event(IncomingCall)
    await call.wait_for(CallState.RINGING, timeout=5)
    await call.hangup()
    assert call.state is CallState.ENDED and call.status == 487
    assert await incoming.call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    assert incoming.call.status == 487
    [cdr] = pbx.wait_cdrs(1)
    assert cdr.disposition is not Disposition.ANSWERED
    await _close(alice, bob)


async def test_the_callee_hanging_up_ends_the_callers_call(pbx):
    alice, bob = await _two_phones(pbx)
    call, answered = await _connect(alice, bob)
    await answered.hangup()
    assert await call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    assert call.reason == "remote hangup"
    assert call.rtp.closed and answered.rtp.closed
    await _close(alice, bob)


async def test_calling_an_unregistered_extension_fails(pbx):
    alice = await start_phone("1001", pbx.port)
    await alice.ua.register(expires=120)
    call = await alice.ua.call("1003")
    assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.ENDED
    assert call.status is not None and call.status >= 400
    await _close(alice)


async def test_register_and_call_over_tcp(pbx):
    alice = await start_phone("1001", pbx.port, transport="TCP")
    bob = await start_phone("1002", pbx.port, transport="TCP")
    for phone in (alice, bob):
        assert (await phone.ua.register(expires=120)).state is REGISTERED
        assert phone.ua.contact_uri.endswith(";transport=tcp")
    call, answered = await _connect(alice, bob)
    await call.hold()
    await bob.wait_event(HoldChanged, lambda e: e.remote)
    await call.hangup()
    assert await answered.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    await _close(alice, bob)


async def test_register_answers_a_sha256_challenge(tmp_path):
    strict = start_pbx(tmp_path / "sha", auth_algorithms=("SHA-256",))
    try:
        alice = await start_phone("1001", strict.port)
        event = await alice.ua.register(expires=120)
        assert (event.state, event.status) == (REGISTERED, 200)
        assert _bindings(strict, "1001") == [alice.ua.contact_uri]
        await _close(alice)
    finally:
        strict.stop()


async def test_an_unreachable_registrar_fails_registration_without_a_status():
    from pbx.sip.timers import TimerConfig
    from tests.integration.ports import free_port

    alice = await start_phone("1001", free_port(), timers=TimerConfig(t1=0.02, t2=0.1))
    event = await alice.ua.register(expires=120)  # Timer F: 64 * T1 = 1.28 s
    assert (event.state, event.status, event.reason) == (RegistrationState.FAILED, None,
                                                         "no answer")  # fmt: skip
    await _close(alice)
