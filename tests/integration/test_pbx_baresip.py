"""Two baresip phones register through the PBX and call each other.

Each phone's microphone is a sine tone of its own frequency; after the call
each side's decoded audio must carry the other's tone, which proves two-way
audio through the B2BUA and the RTP relay (the FFT check of the issue).
"""

from __future__ import annotations

import time

import pytest

from pbx.store import Disposition
from tests.integration.pbx_harness import PASSWORDS, start_pbx
from tests.integration.peers.baresip import BARESIP, Baresip, BaresipConfig, dominant_frequency
from tests.integration.ports import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BARESIP is None, reason="baresip not installed (baresip-core)"),
]


def phone(tmp_path, number: str, pbx_port: int, tone: int, rtp_low: int) -> Baresip:
    account = (
        f"<sip:{number}@127.0.0.1:{pbx_port}>;auth_pass={PASSWORDS[number]};"
        "regint=300;answermode=auto;audio_codecs=PCMU,PCMA"
    )
    config = BaresipConfig(number, free_port(step=2), free_port(), rtp_low, tone, account)
    return Baresip(config, tmp_path)


def test_two_baresips_call_through_the_pbx_with_two_way_audio(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", auth_algorithms=("MD5",))
    alice = phone(tmp_path, "1001", pbx.port, 440, 32000)
    bob = phone(tmp_path, "1002", pbx.port, 1000, 32020)
    try:
        with alice, bob:
            alice.wait_registered()
            bob.wait_registered()
            alice.dial(f"sip:1002@127.0.0.1:{pbx.port}")
            alice.wait_event("CALL_ESTABLISHED")
            bob.wait_event("CALL_ESTABLISHED")
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
