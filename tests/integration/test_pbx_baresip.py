"""Two baresip phones register through the PBX and call each other.

Each phone's microphone is a sine tone of its own frequency; after the call
each side's decoded audio must carry the other's tone, which proves two-way
audio through the B2BUA and the RTP relay (the FFT check of the issue).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from pbx.store import Disposition, HangupSide
from tests.integration.pbx_harness import PASSWORDS, start_pbx
from tests.integration.peers.baresip import (
    BARESIP,
    Baresip,
    BaresipConfig,
    dominant_frequency,
    established,
)
from tests.integration.ports import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BARESIP is None, reason="baresip not installed (baresip-core)"),
]


def phone(
    tmp_path, number: str, pbx_port: int, tone: int, rtp_low: int, codecs: str = "PCMU,PCMA"
) -> Baresip:
    account = (
        f"<sip:{number}@127.0.0.1:{pbx_port}>;auth_pass={PASSWORDS[number]};"
        f"regint=300;answermode=auto;audio_codecs={codecs}"
    )
    config = BaresipConfig(number, free_port(step=2), free_port(), rtp_low, tone, account)
    return Baresip(config, tmp_path)


def test_two_baresips_call_through_the_pbx_with_two_way_audio(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", auth_algorithms=("MD5",))
    alice = phone(tmp_path, "1001", pbx.port, 440, 32000)
    bob = phone(tmp_path, "1002", pbx.port, 1000, 32020)
    try:
        with alice, bob:
            established(alice, bob, f"sip:1002@127.0.0.1:{pbx.port}")
            time.sleep(2.0)
            alice.hangup()
            bob.wait_event("CALL_CLOSED")
        [cdr] = pbx.wait_cdrs(1)
    finally:
        pbx.stop()
    heard_by_alice, rate_a = alice.decoded_audio()
    heard_by_bob, rate_b = bob.decoded_audio()
    assert abs(dominant_frequency(heard_by_alice, rate_a) - 1000) < 20
    assert abs(dominant_frequency(heard_by_bob, rate_b) - 440) < 20
    assert cdr.disposition is Disposition.ANSWERED and cdr.caller == "1001"
    assert cdr.media_stats is not None
    assert cdr.media_stats["caller"]["packets_in"] > 50
    assert cdr.media_stats["callee"]["packets_in"] > 50


def tone_purity(samples, rate: int, hz: float) -> float:
    """The share of a signal's energy (DC left out) within 30 Hz of `hz`: near 1 for a sine
    that went through G.711 coding, well below for one decoded with the wrong law."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1.0 / rate)
    spectrum[freqs < 50] = 0
    return float(spectrum[np.abs(freqs - hz) < 30].sum() / spectrum.sum())


def test_a_mu_law_phone_and_an_a_law_phone_talk_through_the_relay_transcoding(tmp_path):
    """The caller offers PCMU alone, the callee takes PCMA alone: the PBX offers the callee
    both laws, answers the caller in PCMU and the relay converts, also after a hold and
    resume (re-INVITEs both ways through the same rules)."""
    pbx = start_pbx(tmp_path / "pbx", auth_algorithms=("MD5",))
    alice = phone(tmp_path, "1001", pbx.port, 440, 32000, codecs="PCMU")
    bob = phone(tmp_path, "1002", pbx.port, 1000, 32020, codecs="PCMA")
    try:
        with alice, bob:
            established(alice, bob, f"sip:1002@127.0.0.1:{pbx.port}")
            time.sleep(1.0)
            alice.command("hold")
            time.sleep(1.0)
            alice.command("resume")
            time.sleep(2.0)
            alice.hangup()
            bob.wait_event("CALL_CLOSED")
        [cdr] = pbx.wait_cdrs(1)
    finally:
        pbx.stop()
    assert cdr.disposition is Disposition.ANSWERED
    for heard_by, tone in ((alice, 1000), (bob, 440)):
        samples, rate = heard_by.decoded_audio()
        tail = samples[-rate:]  # the last second: after the resume
        assert abs(dominant_frequency(tail, rate) - tone) < 20
        assert tone_purity(tail, rate, tone) > 0.97, heard_by.config.name


def test_a_transfer_to_a_phone_on_the_other_law_is_transcoded(tmp_path):
    """Alice (PCMU alone) talks to Bob, who transfers her (REFER) to Carol (PCMA alone):
    Carol is offered both laws, and the relay converts between Alice's and Carol's."""
    pbx = start_pbx(tmp_path / "pbx", auth_algorithms=("MD5",))
    alice = phone(tmp_path, "1001", pbx.port, 440, 32000, codecs="PCMU")
    bob = phone(tmp_path, "1002", pbx.port, 1000, 32020)
    carol = phone(tmp_path, "1003", pbx.port, 2000, 32040, codecs="PCMA")
    try:
        with alice, bob, carol:
            for one in (alice, bob, carol):
                one.wait_registered()
            alice.dial(f"sip:1002@127.0.0.1:{pbx.port}")
            alice.wait_event("CALL_ESTABLISHED")
            bob.wait_event("CALL_ESTABLISHED")
            time.sleep(0.5)
            bob.command("transfer", f"sip:1003@127.0.0.1:{pbx.port}")
            carol.wait_event("CALL_ESTABLISHED")
            time.sleep(2.0)
            carol.hangup()
            alice.wait_event("CALL_CLOSED")
        cdrs = pbx.wait_cdrs(2)
    finally:
        pbx.stop()
    assert {(c.caller, c.callee) for c in cdrs} == {("1001", "1002"), ("1001", "1003")}
    for heard_by, tone in ((alice, 2000), (carol, 440)):
        samples, rate = heard_by.decoded_audio()
        tail = samples[-rate:]  # the last second: Alice and Carol
        assert abs(dominant_frequency(tail, rate) - tone) < 20, heard_by.config.name
        assert tone_purity(tail, rate, tone) > 0.97, heard_by.config.name


def test_baresip_phones_answer_the_dialog_ping_and_keep_a_held_call(tmp_path):
    """With --dialog-ping 1, a call that one baresip puts on hold (no media expected, so the
    media timeout would not notice a dead phone) is pinged on both legs every second; both
    phones answer, so the call lasts until the caller hangs up."""
    pbx = start_pbx(tmp_path / "pbx", auth_algorithms=("MD5",), dialog_ping=1.0)
    alice = phone(tmp_path, "1001", pbx.port, 440, 32000)
    bob = phone(tmp_path, "1002", pbx.port, 1000, 32020)
    try:
        with alice, bob:
            established(alice, bob, f"sip:1002@127.0.0.1:{pbx.port}")
            alice.command("hold")
            time.sleep(3.5)
            alice.hangup()
            bob.wait_event("CALL_CLOSED")
        [cdr] = pbx.wait_cdrs(1)
        pings = pbx.run(lambda: pbx.pbx.b2bua.dialog_ping.sent)
        ended = pbx.run(lambda: pbx.pbx.status()["dialog_ping"]["ended"])
    finally:
        pbx.stop()
    assert cdr.disposition is Disposition.ANSWERED and cdr.hangup_side is HangupSide.CALLER
    assert pings >= 4 and ended == 0  # both legs, two rounds at least
    assert cdr.billsec > 3
