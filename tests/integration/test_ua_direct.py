"""User agents calling each other directly on 127.0.0.1 (no PBX in the path).

The PBX's B2BUA does not relay REFER, so transfers are shown UA to UA:
a blind transfer (REFER, the transferee calls the target and reports with
NOTIFY), an attended one (REFER with Replaces: the target swaps its call
with the transferor for the transferee's), several calls with one active,
mute, and a WAV file played into a call and recorded on the other side.
"""

from __future__ import annotations

import asyncio
import wave

import numpy as np
import pytest

from pbx.ua import (
    AudioPort,
    CallState,
    FrameRecorder,
    IncomingCall,
    ToneSource,
    TransferProgress,
    TransferRequested,
    WavRecorder,
    WavSource,
    dominant_frequency,
    read_wav,
)
from tests.integration.ports import free_port
from tests.integration.test_ua_support import Phone, start_phone

pytestmark = pytest.mark.integration


@pytest.fixture
async def phones():
    """Three unregistered UAs; their account server is a port nobody listens on."""
    nowhere = free_port()
    made = [await start_phone(user, nowhere) for user in ("1001", "1002", "1003")]
    yield made
    for phone in made:
        await phone.ua.aclose()


def uri_of(phone: Phone) -> str:
    return f"sip:{phone.ua.account.username}@127.0.0.1:{phone.ua.local_port}"


async def connect(caller: Phone, callee: Phone, caller_audio=None, callee_audio=None):
    seen = len(callee.of(IncomingCall))
    call = await caller.ua.call(uri_of(callee), audio=caller_audio)
    incoming = await callee.wait_event(
        IncomingCall, lambda e: callee.of(IncomingCall).index(e) >= seen
    )
    if callee_audio is not None:
        incoming.call.set_source(callee_audio.source)
        incoming.call.set_sink(callee_audio.sink)
    await incoming.call.answer()
    assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
    return call, incoming.call


async def test_blind_transfer_moves_the_far_end_to_the_target(phones):
    alice, bob, carol = phones
    to_bob, bobs = await connect(alice, bob)
    assert await to_bob.transfer(uri_of(carol)) == 202
    requested = await bob.wait_event(TransferRequested)
    assert requested.target == uri_of(carol) and requested.replaces is None
    ringing = await carol.wait_event(IncomingCall)
    assert ringing.remote_uri == "sip:1002@127.0.0.1"  # the transferee's AOR
    await ringing.call.answer()
    done = await alice.wait_event(TransferProgress, lambda e: e.status >= 200)
    assert (done.status, done.reason) == (200, "OK")
    assert await to_bob.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    assert await bobs.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    [bob_carol] = bob.ua.calls
    assert bob_carol.state is CallState.CONNECTED and ringing.call.state is CallState.CONNECTED
    assert alice.ua.calls == []


async def test_attended_transfer_replaces_the_targets_call(phones):
    alice, bob, carol = phones
    to_bob, bobs = await connect(alice, bob)
    to_carol, carols = await connect(alice, carol)
    # Several calls, one active: calling carol put bob on hold.
    assert await to_bob.wait_for(CallState.ON_HOLD, timeout=5) is CallState.ON_HOLD
    assert to_bob.local_hold and bobs.remote_hold
    assert alice.ua.active_call is to_carol
    assert await to_bob.attended_transfer(to_carol) == 202
    requested = await bob.wait_event(TransferRequested)
    assert requested.replaces is not None
    assert requested.replaces.startswith(to_carol.dialog.id.call_id + ";")
    done = await alice.wait_event(TransferProgress, lambda e: e.status >= 200)
    assert done.status == 200
    for call in (to_bob, to_carol, bobs, carols):
        assert await call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    assert alice.ua.calls == []
    [bob_carol], [carol_bob] = bob.ua.calls, carol.ua.calls
    assert (bob_carol.state, carol_bob.state) == (CallState.CONNECTED, CallState.CONNECTED)
    assert carol_bob.call_id == bob_carol.call_id
    assert len(carol.of(IncomingCall)) == 1  # the replacing call was answered at once


async def test_mute_sends_silence_but_keeps_the_packets_flowing(phones):
    alice, bob, _ = phones
    heard = FrameRecorder()
    call, _answered = await connect(
        alice, bob, AudioPort(ToneSource(700.0)), AudioPort(None, heard)
    )
    await asyncio.sleep(0.5)
    assert abs(dominant_frequency(heard.samples()[-2000:]) - 700.0) < 10
    call.mute(True)
    sent_before = call.rtp.stats.sent
    await asyncio.sleep(0.6)
    assert call.muted
    assert call.rtp.stats.sent - sent_before >= 20  # still ~50 packets a second
    assert np.abs(heard.samples()[-1600:]).max() < 50
    call.mute(False)
    await asyncio.sleep(0.5)
    assert np.abs(heard.samples()[-1600:]).max() > 4000
    await call.hangup()


def _write_tone_wav(path, frequency: float, rate: int = 44100, seconds: float = 1.5) -> None:
    t = np.arange(int(rate * seconds)) / rate
    tone = np.round(9000 * np.sin(2 * np.pi * frequency * t)).astype("<i2")
    stereo = np.column_stack([tone, tone]).reshape(-1)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(stereo.tobytes())


async def test_a_wav_file_played_into_a_call_is_recorded_on_the_other_side(phones, tmp_path):
    alice, bob, _ = phones
    prompt, recording = tmp_path / "prompt.wav", tmp_path / "heard.wav"
    _write_tone_wav(prompt, 600.0)
    source = WavSource(prompt)
    assert source.samples.size == 12000  # 1.5 s at 8 kHz, mono
    recorder = WavRecorder(recording)
    call, answered = await connect(alice, bob, AudioPort(source), AudioPort(None, recorder))
    await asyncio.sleep(1.0)
    await call.hangup()
    await answered.wait_for(CallState.ENDED, timeout=5)
    recorder.close()
    heard = read_wav(recording)
    assert heard.size > 8000 * 0.6
    loud = heard[np.abs(heard) > 0]
    assert abs(dominant_frequency(loud[:4000]) - 600.0) < 10


async def test_both_sides_holding_at_once_resolve_the_glare(phones):
    alice, bob, _ = phones
    call, answered = await connect(alice, bob)
    # Each re-INVITE meets the other's: both get 491 and retry after RFC 3261 14.1's delays.
    await asyncio.wait_for(asyncio.gather(call.hold(), answered.hold()), timeout=10)
    assert call.local_hold and answered.local_hold
    assert call.remote_hold and answered.remote_hold
    assert {call.negotiated.local.value, answered.negotiated.local.value} == {"inactive"}
    assert not call.negotiated.we_send and not answered.negotiated.we_send
    await call.hangup()


async def test_an_invite_replacing_an_unknown_dialog_is_refused_481(phones):
    alice, bob, _ = phones
    call = await alice.ua.call(uri_of(bob), headers=[("Replaces", "gone@x;to-tag=1;from-tag=2")])
    assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.ENDED
    assert call.status == 481
    assert bob.of(IncomingCall) == [] and bob.ua.calls == []


async def test_rtcp_reports_give_each_side_the_round_trip_and_loss():
    nowhere = free_port()
    alice = await start_phone("1001", nowhere, rtcp_interval=0.2)
    bob = await start_phone("1002", nowhere, rtcp_interval=0.2)
    try:
        call, answered = await connect(alice, bob)
        await asyncio.sleep(1.5)
        for stream in (call.rtp, answered.rtp):
            assert stream.stats.rtcp_sent >= 3 and stream.stats.rtcp_received >= 3
            assert stream.stats.round_trip is not None and 0 <= stream.stats.round_trip < 0.1
            assert stream.stats.remote_fraction_lost == 0.0
            assert stream.stats.lost == 0 and stream.stats.jitter < 0.02
        quality = call.quality()
        assert quality.lost == 0 and quality.loss == 0.0 and quality.received >= 50
        assert quality.round_trip_ms is not None and quality.round_trip_ms < 100
        assert quality.mos > 4.0  # G.711 on loopback: about 4.4
        await call.hangup()
    finally:
        await alice.ua.aclose()
        await bob.ua.aclose()


async def test_resuming_a_held_call_holds_the_active_one(phones):
    alice, bob, carol = phones
    to_bob, _ = await connect(alice, bob)
    to_carol, _ = await connect(alice, carol)
    assert await to_bob.wait_for(CallState.ON_HOLD, timeout=5) is CallState.ON_HOLD
    assert alice.ua.active_call is to_carol
    await to_bob.resume()
    assert await to_carol.wait_for(CallState.ON_HOLD, timeout=5) is CallState.ON_HOLD
    assert to_carol.local_hold and not to_bob.local_hold
    assert alice.ua.active_call is to_bob and to_bob.state is CallState.CONNECTED
    await to_bob.hangup()
    await to_carol.hangup()


async def test_without_telephone_event_dtmf_goes_by_info():
    from pbx.sip.sdp import PCMA, PCMU
    from pbx.ua import DtmfReceived

    nowhere = free_port()
    alice = await start_phone("1001", nowhere, codecs=(PCMU, PCMA))
    bob = await start_phone("1002", nowhere)
    try:
        call, _ = await connect(alice, bob)
        assert call.negotiated is not None and call.negotiated.dtmf_payload_type is None
        assert await call.send_dtmf("7#") == "info"
        await bob.wait_event(DtmfReceived, lambda e: len(bob.of(DtmfReceived)) >= 2)
        assert [(e.digit, e.method) for e in bob.of(DtmfReceived)] == [("7", "info"), ("#", "info")]
        await call.hangup()
    finally:
        await alice.ua.aclose()
        await bob.ua.aclose()


async def test_no_free_rtp_port_refuses_calls_plainly():
    from pbx.ua import UaError
    from tests.integration.test_ua_support import ua_rtp_block

    nowhere = free_port()
    low, _ = ua_rtp_block()
    alice = await start_phone("1001", nowhere)
    bob = await start_phone("1002", nowhere)
    try:
        bob.ua.ports = type(bob.ua.ports)(low, low + 1)  # room for one call only
        first, _ = await connect(alice, bob)
        second = await alice.ua.call(uri_of(bob))
        assert await second.wait_for(CallState.CONNECTED, timeout=5) is CallState.ENDED
        assert second.status == 503
        with pytest.raises(UaError, match="cannot place the call"):
            await bob.ua.call(uri_of(alice))
        assert first.state is CallState.ON_HOLD  # calling out held it; it lives on
        await first.hangup()
    finally:
        await alice.ua.aclose()
        await bob.ua.aclose()


async def test_many_calls_leave_nothing_behind(phones):
    alice, bob, _ = phones
    for i in range(10):
        call, answered = await connect(alice, bob)
        await (call.hangup() if i % 2 else answered.hangup())
        assert await call.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
        assert await answered.wait_for(CallState.ENDED, timeout=5) is CallState.ENDED
    await asyncio.sleep(0.1)
    for ua in (alice.ua, bob.ua):
        assert ua.calls == [] and len(ua.dialogs) == 0 and len(ua.client) == 0
        assert ua.ports.in_use == 0
        assert not ua._tasks  # every spawned task finished
