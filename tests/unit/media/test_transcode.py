"""PCMU <-> PCMA transcoding of whole RTP packets (pbx.media.transcode)."""

from __future__ import annotations

import numpy as np
import pytest

from pbx.media import g711
from pbx.media.rtp import RtpExtension, RtpPacket
from pbx.media.transcode import (
    PayloadTranscoder,
    TranscodeError,
    transcoder_between,
    transcoders_for_call,
)
from pbx.sip.sdp import PCMA, PCMU, Codec

PAYLOAD = bytes((i * 7 + 3) & 0xFF for i in range(160))


def packet(pt: int = 0, payload: bytes = PAYLOAD, **kw) -> RtpPacket:
    return RtpPacket(
        payload_type=pt, sequence=4242, timestamp=160_000, ssrc=0xDEADBEEF, payload=payload, **kw
    )


def forward(transcoder: PayloadTranscoder, pkt: RtpPacket) -> RtpPacket:
    return RtpPacket.parse(transcoder(bytes(pkt)))


def test_pcmu_packet_becomes_pcma_with_header_kept() -> None:
    t = transcoder_between(PCMU, PCMA)
    assert t is not None
    out = forward(t, packet(marker=True))
    assert out.payload_type == 8 and out.marker is True
    assert (out.sequence, out.timestamp, out.ssrc) == (4242, 160_000, 0xDEADBEEF)
    assert out.payload == g711.pcmu_to_pcma(PAYLOAD)
    assert t.packets == 1 and t.passed == 0


def test_pcma_packet_becomes_pcmu_and_round_trip_is_close() -> None:
    tone = (6000 * np.sin(2 * np.pi * 440 * np.arange(160) / 8000)).astype(np.int16)
    a_to_u = transcoder_between(PCMA, PCMU)
    assert a_to_u is not None
    out = forward(a_to_u, packet(pt=8, payload=g711.alaw_encode(tone)))
    assert out.payload_type == 0 and out.marker is False
    decoded = g711.ulaw_decode(out.payload).astype(np.int32)
    assert np.max(np.abs(decoded - tone)) <= 400


def test_csrc_extension_and_padding_are_kept_byte_for_byte() -> None:
    t = transcoder_between(PCMU, PCMA)
    assert t is not None
    pkt = packet(
        csrc=(1, 2), extension=RtpExtension(0xBEDE, b"\x10\xaa\x00\x00"), padding=b"\x07\x07\x03"
    )
    out = forward(t, pkt)
    assert out.csrc == (1, 2) and out.extension == pkt.extension
    assert out.padding == b"\x07\x07\x03"
    assert out.payload == g711.pcmu_to_pcma(PAYLOAD)
    assert len(t(bytes(pkt))) == len(bytes(pkt))


def test_telephone_event_renumbered_and_untouched() -> None:
    t = transcoder_between(PCMU, PCMA, pt_map={101: 96})
    assert t is not None
    event = packet(pt=101, payload=b"\x05\x8a\x03\x20")
    out = forward(t, event)
    assert out.payload_type == 96 and out.payload == b"\x05\x8a\x03\x20"
    comfort_noise = bytes(packet(pt=13, payload=b"\x40"))
    assert t(comfort_noise) == comfort_noise
    assert t.passed == 2 and t.packets == 0


def test_non_rtp_and_broken_packets_pass_unchanged() -> None:
    t = transcoder_between(PCMU, PCMA)
    assert t is not None
    for junk in (b"", b"\x80\x00", b"\x40" + bytes(20)):
        assert t(junk) == junk
    broken_padding = bytearray(bytes(packet(padding=b"\x01")))
    broken_padding[-1] = 0  # padding count of zero is invalid
    assert t(bytes(broken_padding)) == bytes(broken_padding)
    assert t.packets == 0


def test_same_codec_needs_no_transcoder_but_renumbering_does() -> None:
    assert transcoder_between(PCMU, Codec(0, "pcmu", 8000)) is None
    t = transcoder_between(PCMU, Codec(0, "PCMU", 8000), pt_map={101: 100})
    assert t is not None
    assert forward(t, packet()).payload == PAYLOAD
    assert forward(t, packet(pt=101, payload=b"\x01\x00\x00\xa0")).payload_type == 100


def test_unsupported_pair_is_refused_with_names() -> None:
    with pytest.raises(TranscodeError, match="cannot transcode G722 to PCMU"):
        transcoder_between(Codec(9, "G722", 8000), PCMU)


def test_call_plan_gives_both_directions_and_renumbers_events() -> None:
    a_to_b, b_to_a = transcoders_for_call(PCMU, PCMA, a_events=101, b_events=96)
    assert a_to_b is not None and b_to_a is not None
    assert forward(a_to_b, packet()).payload_type == 8
    assert forward(b_to_a, packet(pt=8)).payload == g711.pcma_to_pcmu(PAYLOAD)
    assert forward(a_to_b, packet(pt=101, payload=b"\x01\x00\x00\xa0")).payload_type == 96
    assert forward(b_to_a, packet(pt=96, payload=b"\x01\x00\x00\xa0")).payload_type == 101


def test_call_plan_for_matching_legs_is_untouched_both_ways() -> None:
    assert transcoders_for_call(PCMA, PCMA, 101, 101) == (None, None)
    assert transcoders_for_call(PCMU, PCMU, None, 101) == (None, None)
