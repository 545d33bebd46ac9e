"""The jitter buffer under random mixes of jitter, loss, reordering, duplicates and pauses.

Whatever the trace, frames come out in sequence order, every packet sent is
accounted for exactly once (played, skipped, late or lost), duplicates are
all caught and the buffer never holds more than its capacity.
"""

from __future__ import annotations

import random

import pytest

from pbx.media.jitter import FrameKind, JitterBuffer


def trace(rng: random.Random, count: int) -> tuple[list[tuple[int, int, float]], int, int, int]:
    """(seq, ts, arrival) for `count` packets, the first sequence number, sent and copies."""
    sd = rng.choice((0.0, 0.005, 0.02, 0.05))
    loss = rng.choice((0.0, 0.01, 0.1))
    seq0, ts0 = rng.randrange(65536), rng.randrange(1 << 32)
    out, sent, dups, pause = [], 0, 0, 0.0
    for i in range(count):
        if rng.random() < 0.01:
            pause += rng.choice((0.1, 0.5, 2.0))  # DTX: time and timestamps move on together
        ts = (ts0 + 160 * i + int(pause * 8000)) & 0xFFFFFFFF
        arrival = 0.02 * i + pause + 0.04 + abs(rng.gauss(0.0, sd))
        sent += 1
        if rng.random() < loss:
            continue
        out.append(((seq0 + i) & 0xFFFF, ts, arrival))
        if rng.random() < 0.02:
            out.append(((seq0 + i) & 0xFFFF, ts, arrival + rng.uniform(0.0, 0.1)))
            dups += 1
    out.sort(key=lambda p: p[2])
    return out, seq0, sent, dups


@pytest.mark.parametrize("seed", range(40))
def test_random_traces_keep_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    packets, first, sent, dups = trace(rng, 1500)
    jb = JitterBuffer()
    now, index, played = packets[0][2] + rng.uniform(0, 0.02), 0, []
    for _ in range(int((packets[-1][2] - now) / 0.02) + 50):
        while index < len(packets) and packets[index][2] <= now:
            seq, ts, arrival = packets[index]
            jb.push(seq, ts, b"", arrival, ssrc=1)
            index += 1
        assert len(jb) <= jb.capacity
        frame = jb.pop(now)
        if frame is not None and frame.kind is FrameKind.VOICE:
            assert frame.sequence is not None
            played.append(frame.sequence)
        now += 0.02
    unwrapped = [(s - first) & 0xFFFF for s in played]
    assert unwrapped == sorted(unwrapped) and len(set(played)) == len(played)
    s = jb.stats
    # every datagram pushed is filed, or dropped as a duplicate or as late (a copy of
    # a packet that itself came too late counts as late again, not as a duplicate)
    assert s.received + s.duplicate + s.late == len(packets)
    assert dups - s.late <= s.duplicate <= dups
    assert s.played + s.skipped + s.overflow + len(jb) == s.received
    # every packet the phone sent is played, skipped, late or lost exactly once, except
    # those lost before the first or after the last one that arrived (nothing shows
    # they existed); a late duplicate copy counts as late once more
    received_seqs = {(seq - first) & 0xFFFF for seq, _, _ in packets}
    unseen = min(received_seqs) + (sent - 1 - max(received_seqs))
    dropped = sent - len(received_seqs)
    assert s.lost == dropped - unseen
    total = s.played + s.skipped + s.late + s.lost + s.overflow
    assert sent - unseen <= total <= sent - unseen + dups
