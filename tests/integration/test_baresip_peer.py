"""The baresip harness itself: two instances call each other directly, no PBX.

If this fails, the PBX's baresip tests cannot be trusted; if it passes, a
failure there is the PBX's.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.peers.baresip import BARESIP, Baresip, BaresipConfig, dominant_frequency
from tests.integration.ports import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BARESIP is None, reason="baresip not installed (baresip-core)"),
]


def test_two_baresips_hear_each_others_tone(tmp_path):
    port_a, port_b = free_port(step=2), free_port(step=2)
    a = Baresip(
        BaresipConfig("a", port_a, free_port(), 31000, 440, f"<sip:a@127.0.0.1:{port_a}>;regint=0"),
        tmp_path,
    )
    b = Baresip(
        BaresipConfig(
            "b",
            port_b,
            free_port(),
            31020,
            1000,
            f"<sip:b@127.0.0.1:{port_b}>;regint=0;answermode=auto",
        ),
        tmp_path,
    )
    with a, b:
        a.dial(f"sip:b@127.0.0.1:{port_b}")
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        time.sleep(2.0)
        a.hangup()
        b.wait_event("CALL_CLOSED")
    heard_by_a, rate_a = a.decoded_audio()
    heard_by_b, rate_b = b.decoded_audio()
    assert abs(dominant_frequency(heard_by_a, rate_a) - 1000) < 20
    assert abs(dominant_frequency(heard_by_b, rate_b) - 440) < 20
