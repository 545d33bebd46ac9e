"""RTCP parsing fails only with RtcpError: every truncation and bit flips of real compounds."""

from __future__ import annotations

import random

import pytest

from pbx.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SdesType,
    SenderInfo,
    SenderReport,
    SourceDescription,
    build_compound,
    parse_compound,
)
from pbx.media.rtp import RtcpError

BLOCK = ReportBlock(7, 3, -2, 70000, 80, 0x12345678, 0x8000)
COMPOUNDS = [
    build_compound(
        [
            SenderReport(9, SenderInfo(1, 2, 3, 4, 5), (BLOCK, BLOCK)),
            SourceDescription((SdesChunk(9, ((SdesType.CNAME, b"alice@pbx"),)),)),
        ]
    ),
    build_compound(
        [
            ReceiverReport(9, (BLOCK,), padding=b"\0\0\0\x04"),
            SourceDescription((SdesChunk(9, ((SdesType.CNAME, b"b"), (SdesType.TOOL, b"x"))),)),
            Bye((9, 10), b"gone"),
        ]
    ),
]


@pytest.mark.parametrize("data", COMPOUNDS)
def test_round_trip_and_every_truncation(data: bytes) -> None:
    assert build_compound(parse_compound(data)) == data
    for end in range(len(data)):
        try:
            packets = parse_compound(data[:end])
        except RtcpError:
            continue
        assert build_compound(packets) == data[:end]  # a whole-packet prefix parses


@pytest.mark.parametrize("data", COMPOUNDS)
def test_bit_flips_parse_or_raise_rtcp_error(data: bytes) -> None:
    rng = random.Random(3550)
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        try:
            packets = parse_compound(bytes(mutated))
        except RtcpError:
            continue
        assert build_compound(packets) == bytes(mutated)
