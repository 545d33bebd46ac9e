"""The user agent through the PBX against SIPp callees: a third-party peer checks what we send.

SIPp's scenarios assert the SDP directions of our hold and resume re-INVITEs
and the body of our INFO DTMF; early media (183 with SDP and audio) reaches
our sink before the answer; a callee that holds us is answered recvonly.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pbx.store import Disposition
from pbx.ua import AudioPort, CallState, CallStateChanged, FrameRecorder, HoldChanged
from tests.integration.pbx_harness import start_pbx
from tests.integration.ports import free_port
from tests.integration.test_b2bua_support import callee, needs_sipp, register, relay_ports_regexp
from tests.integration.test_ua_support import start_phone

pytestmark = [pytest.mark.integration, needs_sipp]


@pytest.fixture
def pbx(tmp_path):
    running = start_pbx(tmp_path / "pbx")
    yield running
    running.stop()


async def _wait_sipp(sipp):
    return await asyncio.to_thread(sipp.wait)


async def test_hold_resume_and_info_dtmf_as_a_sipp_callee_checks_them(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1002", port).ok
    held = callee(tmp_path, "uas_hold.xml", port, auto_answer=False,
                  RELAY_PORTS=relay_ports_regexp(pbx))  # fmt: skip
    alice = await start_phone("1001", pbx.port)
    call = await alice.ua.call("1002")
    assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED
    assert call.negotiated.codec.name == "PCMA"  # SIPp answers 8 101
    await call.hold()
    assert call.state is CallState.ON_HOLD
    await call.resume()
    assert call.state is CallState.CONNECTED
    assert await call.send_dtmf("5", method="info") == "info"
    await call.hangup()
    result = await _wait_sipp(held)
    assert result.ok, result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.ANSWERED, 200)
    await alice.ua.aclose()


async def test_early_media_is_heard_before_the_answer(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1002", port).ok
    early = callee(tmp_path, "uas_early.xml", port, EARLY_MS="1500")
    alice = await start_phone("1001", pbx.port)
    heard = FrameRecorder()
    call = await alice.ua.call("1002", audio=AudioPort(None, heard),
                               headers=[("X-Call-Type", "sipp-test")])  # fmt: skip
    assert await call.wait_for(CallState.EARLY_MEDIA, timeout=10) is CallState.EARLY_MEDIA
    await asyncio.sleep(1.0)
    assert call.state is CallState.EARLY_MEDIA and call.connected_at is None
    # SIPp's recording has 30 ms packets (240 samples) among our 160-sample silence frames:
    # what was heard, in whole 20 ms chunks
    samples = heard.samples()
    frames = np.abs(samples[: len(samples) // 160 * 160]).reshape(-1, 160).max(axis=1)
    assert (frames > 100).sum() >= 10  # SIPp's recorded audio, not A-law silence (+-8)
    assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
    states = [e.new for e in alice.of(CallStateChanged)]
    assert states[:2] == [CallState.EARLY_MEDIA, CallState.CONNECTED]
    await call.hangup()
    result = await _wait_sipp(early)
    assert result.ok, result.log
    await alice.ua.aclose()


async def test_a_callee_holding_us_gets_a_recvonly_answer(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    holding = callee(tmp_path, "uas_hold_caller.xml", port, RELAY_PORTS=relay_ports_regexp(pbx))
    alice = await start_phone("1001", pbx.port)
    call = await alice.ua.call("1003")
    assert await call.wait_for(CallState.CONNECTED, timeout=10) is CallState.CONNECTED
    await alice.wait_event(HoldChanged, lambda e: e.remote)
    assert call.state is CallState.ON_HOLD and call.remote_hold and not call.local_hold
    assert call.negotiated.local.value == "recvonly" and not call.negotiated.we_send
    await call.hangup()
    result = await _wait_sipp(holding)
    assert result.ok, result.log
    await alice.ua.aclose()
