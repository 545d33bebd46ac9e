"""G.711 and DSP throughput in 20 ms frames (160 samples at 8 kHz) per second on one core.

Why these figures matter: the recorder decodes every packet of both legs of
every recorded call (2 x 50 frames/s per call), the relay transcodes every
packet of a PCMU/PCMA mismatched call in its hot path, and in-band DTMF
detection runs on the audio of phones that send no RFC 4733 events. One
frame per second of capacity is 1/50 of a stream. Loops are bounded in
count and in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from pbx.media import g711
from pbx.media.dtmf import InbandDetector
from pbx.media.tones import ToneGenerator, ToneKind, tone_for
from pbx.media.transcode import transcoder_between
from pbx.sip.sdp import PCMA, PCMU
from tests.bench.rows import Row

COMMAND = ".venv/bin/python -m tests.bench g711"
FRAME = 160
CODEC_GOAL = 50_000.0  # frames/s: 1 000 streams, i.e. 500 recorded calls, on one core
TRANSCODE_GOAL = 250_000.0  # packets/s: far above what one relay core forwards


def _rate(work: Callable[[int], object], count: int, budget_s: float) -> float:
    """Calls per second over at most `count` calls or `budget_s` seconds (best of 3 runs)."""
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        done = 0
        while done < count and time.perf_counter() - started < budget_s:
            work(done)
            done += 1
        best = max(best, done / (time.perf_counter() - started))
    return best


def _frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(711)
    speechish = rng.normal(0, 3000, (count, FRAME)).clip(-32768, 32767)
    return [row.astype(np.int16) for row in speechish]


def run(quick: bool) -> list[Row]:
    count, budget = (5_000, 0.3) if quick else (50_000, 2.0)
    frames = _frames(64)
    rows: list[Row] = []
    laws = (
        ("mu-law", g711.ulaw_encode, g711.ulaw_decode),
        ("A-law", g711.alaw_encode, g711.alaw_decode),
    )
    for name, encode, decode in laws:
        payloads = [encode(f) for f in frames]

        def both(i: int, encode=encode, decode=decode, payloads=payloads) -> object:
            encode(frames[i & 63])
            return decode(payloads[i & 63])

        rate = _rate(both, count, budget)
        rows.append(
            Row(
                f"G.711 {name} encode+decode, 20 ms frame",
                rate,
                "frames/s",
                f">= {CODEC_GOAL:,.0f} frames/s",
                rate >= CODEC_GOAL,
                "numpy LUT, one core",
                COMMAND,
            )
        )
        rate = _rate(
            lambda i, decode=decode, payloads=payloads: decode(payloads[i & 63]), count, budget
        )
        rows.append(Row(f"G.711 {name} decode only", rate, "frames/s", "", None, "", COMMAND))

    payload = g711.ulaw_encode(frames[0])
    rate = _rate(lambda _: g711.pcmu_to_pcma(payload), count * 4, budget)
    rows.append(
        Row(
            "PCMU->PCMA payload transcode",
            rate,
            "frames/s",
            f">= {TRANSCODE_GOAL:,.0f} frames/s",
            rate >= TRANSCODE_GOAL,
            "bytes.translate, 160 octets",
            COMMAND,
        )
    )
    transcoder = transcoder_between(PCMU, PCMA)
    assert transcoder is not None
    packet = bytes([0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4]) + payload
    rate = _rate(lambda _: transcoder(packet), count * 4, budget)
    rows.append(
        Row(
            "RTP packet transcode (relay hook)",
            rate,
            "packets/s",
            f">= {TRANSCODE_GOAL:,.0f} packets/s",
            rate >= TRANSCODE_GOAL,
            "header rewrite + translate",
            COMMAND,
        )
    )

    detector = InbandDetector()
    rate = _rate(lambda i: detector.feed(frames[i & 63]), count // 10, budget)
    rows.append(
        Row("in-band DTMF detection", rate, "frames/s", "", None, "Goertzel, 8 tones", COMMAND)
    )
    generator = ToneGenerator(tone_for("UK", ToneKind.RINGBACK))
    rate = _rate(lambda _: generator.frame(FRAME), count, budget)
    rows.append(Row("tone generation (UK ringback)", rate, "frames/s", "", None, "", COMMAND))
    return rows
