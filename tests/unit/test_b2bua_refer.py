"""Refer-To parsing for the PBX's REFER handling (RFC 3515 2.1, RFC 3891 3)."""

from __future__ import annotations

import pytest

from pbx.b2bua_refer import both_ways, one_way, refer_target
from pbx.sip.sdp import Direction, SessionDescription


@pytest.mark.parametrize(
    ("refer_to", "number", "replaces"),
    [
        ("<sip:1003@127.0.0.1:5060>", "1003", None),
        ("sip:1003@pbx.example.com;transport=udp", "1003", None),
        ('"Carol" <sips:1003@pbx.example.com>', "1003", None),
        ("<sip:1003;ext=1@pbx>", "1003", None),
        ("<tel:+15551234>", "+15551234", None),
        ("<sip:pbx.example.com>", None, None),
        ("<mailto:carol@example.com>", None, None),
        (
            "<sip:1003@10.0.0.3?Replaces=abc%40host%3Bto-tag%3D12%3Bfrom-tag%3D34>",
            "1003",
            "abc@host;to-tag=12;from-tag=34",
        ),
    ],
)
def test_refer_target_names_the_number_and_replaces(refer_to, number, replaces):
    assert refer_target(refer_to) == (number, replaces)


HELD = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n"
    "m=video 0 RTP/AVP 96\r\n"
)


def test_both_ways_takes_a_held_transferees_audio_off_hold():
    held = SessionDescription.parse(HELD)
    assert one_way(held)
    fixed = both_ways(held)
    assert not one_way(fixed)
    assert fixed.direction_for(fixed.media[0]) is Direction.SENDRECV
    assert "a=recvonly" not in str(fixed)
    assert [m.port for m in fixed.media] == [4000, 0]  # nothing else changes
    assert fixed.media[0].codecs() == held.media[0].codecs()


@pytest.mark.parametrize("attribute", ["a=sendonly", "a=inactive", "a=recvonly"])
def test_one_way_sees_any_hold_direction(attribute):
    assert one_way(SessionDescription.parse(HELD.replace("a=recvonly", attribute)))
    assert not one_way(SessionDescription.parse(HELD.replace("a=recvonly\r\n", "")))
