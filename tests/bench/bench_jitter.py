"""Jitter buffer, RTCP and per-leg statistics throughput on one core.

Why these figures matter: a jitter buffer runs one push and one pop per
20 ms frame for every stream it plays (the recorder and the softphone: 50
of each per second per stream), and the per-leg statistics tap parses the
header of every RTP packet the relay forwards for a call it measures (2 x 50
packets per second per call). Capacity in streams is the rate divided by 50.
RTCP is rare (one compound per phone every ~5 s) so its figure is for
scale. Loops are bounded in count and in time.
"""

from __future__ import annotations

import random
import time

from pbx.media.jitter import JitterBuffer
from pbx.media.leg_stats import CallQuality
from pbx.media.rtcp import (
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
from pbx.media.rtp import RtpPacket
from tests.bench.rows import Row

COMMAND = ".venv/bin/python -m tests.bench jitter"
PUSH_POP_GOAL = 50_000.0  # frames/s: 1 000 buffered streams (500 recorded calls) on one core
TAP_GOAL = 200_000.0  # packets/s: 2 000 measured calls' worth of RTP on one core


def _trace(count: int) -> list[tuple[int, int, float]]:
    """A 20 ms stream with gaussian jitter (sd 10 ms), some reordering and 2 % loss."""
    rng = random.Random(9)
    out = []
    for i in range(count):
        if rng.random() < 0.02:
            continue
        out.append((i & 0xFFFF, (160 * i) & 0xFFFFFFFF, i * 0.02 + abs(rng.gauss(0.03, 0.01))))
    out.sort(key=lambda item: item[2])
    return out


def _push_pop_rate(count: int, budget_s: float) -> tuple[float, int, int]:
    """Frames per second through push+pop (best of 3), with the late and lost counts."""
    trace = _trace(count)
    payload = b"\xff" * 160
    best, late, lost = 0.0, 0, 0
    for _ in range(3):
        jb = JitterBuffer()
        started = time.perf_counter()
        index, frames, now = 0, 0, trace[0][2]
        while index < len(trace) and time.perf_counter() - started < budget_s:
            while index < len(trace) and trace[index][2] <= now:
                seq, ts, arrival = trace[index]
                jb.push(seq, ts, payload, arrival, ssrc=1)
                index += 1
            jb.pop(now)
            frames += 1
            now += 0.02
        best = max(best, frames / (time.perf_counter() - started))
        late, lost = jb.stats.late, jb.stats.lost
    return best, late, lost


def _tap_rate(count: int, budget_s: float, deferred: bool = False) -> float:
    """Packets per second through the statistics tap (deferred: the relay-side append only)."""
    packets = [bytes(RtpPacket(0, i & 0xFFFF, 160 * i, 7, b"\xff" * 160)) for i in range(count)]
    best = 0.0
    for _ in range(3):
        call = CallQuality(("a", "b"))
        call.queue_limit = count + 1
        tap = call.deferred_tap if deferred else call.tap
        started = time.perf_counter()
        done = 0
        while done < count and time.perf_counter() - started < budget_s:
            tap("a", packets[done], done * 0.02)
            done += 1
        best = max(best, done / (time.perf_counter() - started))
    return best


def _rtcp_rate(count: int, budget_s: float) -> float:
    block = ReportBlock(7, 3, 10, 70000, 80, 0x12345678, 0x8000)
    compound = build_compound(
        [
            SenderReport(9, SenderInfo(1, 2, 3, 4, 5), (block,)),
            SourceDescription((SdesChunk(9, ((SdesType.CNAME, b"alice@pbx"),)),)),
        ]
    )
    rr = ReceiverReport(9, (block,))
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        done = 0
        while done < count and time.perf_counter() - started < budget_s:
            parse_compound(compound)
            bytes(rr)
            done += 1
        best = max(best, done / (time.perf_counter() - started))
    return best


def run(quick: bool) -> list[Row]:
    count, budget = (10_000, 0.3) if quick else (100_000, 2.0)
    rate, late, lost = _push_pop_rate(count, budget)
    tap = _tap_rate(count, budget)
    deferred = _tap_rate(count, budget, deferred=True)
    rtcp = _rtcp_rate(count // 10, budget)
    return [
        Row(
            "jitter buffer push+pop (gaussian jitter, 2 % loss)",
            rate,
            "frames/s",
            f">= {PUSH_POP_GOAL:,.0f}",
            rate >= PUSH_POP_GOAL,
            f"{rate / 50:,.0f} streams/core; late {late}, lost {lost} on the last run",
            COMMAND,
        ),
        Row(
            "per-leg statistics tap (RTP header, A.1 + A.8)",
            tap,
            "packets/s",
            f">= {TAP_GOAL:,.0f}",
            tap >= TAP_GOAL,
            f"{tap / 100:,.0f} calls/core at 2 x 50 packets/s",
            COMMAND,
        ),
        Row(
            "per-leg statistics deferred tap (append on the relay loop)",
            deferred,
            "packets/s",
            note="the header work moves to drain(), e.g. the relay's 1 s sweep",
            command=COMMAND,
        ),
        Row(
            "RTCP SR+SDES parse and RR build",
            rtcp,
            "compounds/s",
            note="one per phone every ~5 s (RFC 3550 §6.2)",
            command=COMMAND,
        ),
    ]
