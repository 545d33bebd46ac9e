"""Call recording: the tap's cost on the relay path and the recorder's throughput.

Issue goal: recorded calls keep >= 80 % of the unrecorded capacity per core.

How (one process, CPU time from `time.process_time`, loops bounded in time):
- *Relay path*: a real `RelaySession` whose sockets are replaced by UDP
  sockets that really `sendto` 127.0.0.1 (a sink that nobody reads; the
  kernel drops what overflows), fed 172-byte G.711 datagrams through
  `_Port.datagram_received`, once untapped (the hot path) and once with a
  recorder tap (still the hot path, plus one clock read and the tap's list
  append). The difference is the tap's cost per packet on the relay's loop.
- *Recorder*: 100 calls of two legs of 20 ms PCMU/PCMA packets (50/s each)
  go through `Recorder.tap`, and `flush_recorders` runs every 200 ms of
  stream time over all of them, as `RecordingManager.tick` does, decoding
  and appending to WAV files in a temp dir. Packets per CPU second of the
  flush is its throughput; /100 is the recorded calls one core keeps up with.
- *Capacity ratio*: a real `Relay` on the PBX's loop (uvloop where
  installed) with 200 calls shaped like real ones: a sender process plays
  both phones of each call, one 20 ms packet per phone every 20 ms with its
  own SSRC, sequence and timestamp (20,000 packets/s in all, spread evenly);
  CPU time of this process per relayed packet, without and with a recorder
  per call flushed every FLUSH_INTERVAL as pbx.recording does. Unrecorded / recorded is the
  share of capacity recorded calls keep. Process CPU time counts every thread,
  so the recorder's flushes are in the recorded figure wherever they run; the
  flushes' own CPU in the same window is shown beside it.
- *Paired*: the real loop's ratio divides two runs made seconds apart, and a
  shared host's load swings by tens of percent in that time. `_PairedRelay`
  puts 200 plain and 200 recorded calls on one relay (epoll reader, connected
  twins, phones as sockets of this process) and lets the two kinds take turns
  every 20 ms of a fake clock, timing only the reader's rounds and the
  flushes: both kinds see the same load and caches, so the ratio is steady.
  It leaves out the loop's wake-ups and timers, so its figures are not the
  real loop's; what it shows is the difference the recorder makes.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pbx.media.leg_stats import CallQuality
from pbx.media.ports import PortAllocator, PortPair
from pbx.media.recorder import Recorder
from pbx.media.recorder_batch import flush_recorders
from pbx.media.relay import Leg, Relay, RelaySession, _LegState
from pbx.recording import FLUSH_INTERVAL, WRITE_EVERY
from tests.bench.rows import Row

COMMAND = ".venv/bin/python -m tests.bench recording"
PAYLOAD = 160
BATCH = 10_000
CALLS = 200  # real-loop runs: 200 calls x 2 phones x 50 packets/s = 20,000 packets/s


def packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


class _Transport:
    """Stands in for the asyncio transport: a real non-blocking sendto, errors ignored."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def sendto(self, data: bytes, addr: Any) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


def relay_session() -> tuple[RelaySession, list[socket.socket]]:
    """Two legs wired to real loopback sockets, both latched, no event loop."""
    relay = Relay(PortAllocator(40000, 40100), clock=time.monotonic)
    session = RelaySession(relay, "bench")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sockets = [sink]
    for index, leg in enumerate((Leg.A, Leg.B)):
        pair = PortPair(40000 + 4 * index, 40001 + 4 * index)
        state = _LegState(leg, socket.AF_INET, pair, "127.0.0.1", session)
        for port in state.ports():
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sockets.append(sock)
            port.transport = _Transport(sock)  # type: ignore[assignment]
            port.latched = sink.getsockname()
        session._add_leg(state)
    session._rewire()
    return session, sockets


def per_packet(fn: Callable[[int], None], seconds: float) -> float:
    """CPU seconds per call of fn(i), over batches until `seconds` of wall time pass."""
    deadline = time.monotonic() + seconds
    calls, cpu = 0, 0.0
    while time.monotonic() < deadline:
        start = time.process_time()
        for i in range(BATCH):
            fn(i)
        cpu += time.process_time() - start
        calls += BATCH
    return cpu / calls


def relay_costs(seconds: float) -> tuple[float, float, float]:
    """(untapped, tapped, quality-measured) CPU seconds per relayed RTP packet."""
    session, sockets = relay_session()
    port = session._legs[Leg.A].rtp
    source = port.latched
    data = packet(0, 1, 160, 7, b"\xff" * PAYLOAD)
    try:
        untapped = per_packet(lambda i: port.datagram_received(data, source), seconds)  # type: ignore[arg-type]
        recorder = Recorder(Path("/dev/null"))
        session.set_tap(recorder.tap)
        queue = recorder._queues[0]

        def tapped(i: int) -> None:
            port.datagram_received(data, source)  # type: ignore[arg-type]
            if len(queue) > 10000:
                queue.clear()  # the recorder drains it off the hot path; not measured here

        with_tap = per_packet(tapped, seconds)
        session.set_tap(None)
        session.quality = CallQuality((Leg.A, Leg.B), event_types=frozenset(range(96, 128)))
        session._rewire()  # what open_session(quality=True) sets up
        quality = session.quality

        def measured(i: int) -> None:
            port.datagram_received(data, source)  # type: ignore[arg-type]
            if len(quality._queue) > 5000:
                quality.drain()  # the relay's once-a-second sweep; counted here too

        with_quality = per_packet(measured, seconds)
    finally:
        for sock in sockets:
            sock.close()
    return untapped, with_tap, with_quality


def tap_call_cost(seconds: float) -> float:
    """CPU seconds of one `Recorder.tap` call alone (what the recorder adds to the relay)."""
    recorder = Recorder(Path("/dev/null"))
    queue = recorder._queues[0]
    tap, data = recorder.tap, packet(0, 1, 160, 7, b"\xff" * PAYLOAD)

    def call(i: int) -> None:
        tap(Leg.A, data, 1.0)
        if len(queue) > 10000:
            queue.clear()

    def baseline(i: int) -> None:
        if len(queue) > 10000:
            queue.clear()

    return per_packet(call, seconds) - per_packet(baseline, seconds / 2)


def recorder_throughput(seconds: float, folder: Path, calls: int = 100) -> tuple[float, int]:
    """(packets per CPU second of flush, packets processed) for `calls` calls of two
    50 pps legs, flushed together every 200 ms."""
    from pbx.media import g711

    rng = np.random.default_rng(1)
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(PAYLOAD) / 8000)).astype(np.int16)
    payloads = {0: g711.ulaw_encode(tone), 8: g711.alaw_encode(tone)}
    recorders = [Recorder(folder / f"bench-{i}.wav", write_every=WRITE_EVERY) for i in range(calls)]
    for recorder in recorders:
        recorder.start(0.0)
    deadline = time.monotonic() + seconds
    cpu, packets, k = 0.0, 0, 0
    while time.monotonic() < deadline and k < 50 * 600:
        for _ in range(10):  # 200 ms of both legs, with a little jitter
            k += 1
            at = k * 0.02
            for i, recorder in enumerate(recorders):
                a = packet(0, k, k * 160, 2 * i, payloads[0])
                b = packet(8, k, k * 160, 2 * i + 1, payloads[8])
                recorder.tap(Leg.A, a, at + rng.uniform(0, 0.01))
                recorder.tap(Leg.B, b, at + rng.uniform(0, 0.01))
        start = time.process_time()
        flush_recorders(recorders, k * 0.02)
        cpu += time.process_time() - start
        packets += 20 * calls
    for recorder in recorders:
        recorder.close(k * 0.02)
    return packets / cpu, packets


SENDER = """
import json, socket, sys, time
streams, seconds = json.loads(sys.stdin.readline())
socks = []
for _ in range(streams):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    socks.append(sock)
print(json.dumps([s.getsockname()[1] for s in socks]), flush=True)
targets = json.loads(sys.stdin.readline())
payload = bytes([0xFF]) * 160
sent, tick, start = 0, 0, time.monotonic()
while time.monotonic() - start < seconds:
    # One 20 ms packet per stream per 20 ms, the streams spread over 4 slots of 5 ms
    # so the relay sees a steady flow, as from phones that did not start together.
    slot = tick % 4
    seq = tick // 4
    for i in range(slot, streams, 4):
        data = (b"\\x80\\x00" + (seq & 0xFFFF).to_bytes(2, "big")
                + (seq * 160 & 0xFFFFFFFF).to_bytes(4, "big") + i.to_bytes(4, "big") + payload)
        try:
            socks[i].sendto(data, ("127.0.0.1", targets[i]))
            sent += 1
        except OSError:
            pass
    tick += 1
    delay = start + tick * 0.005 - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(sent, flush=True)
"""


def real_relay(record: bool, calls: int, seconds: float, folder: Path) -> tuple[float, float]:
    """CPU seconds of this process (all threads) per relayed packet: a real Relay on the
    PBX's loop (uvloop where installed), `calls` calls whose two phones (a sender process)
    each send 50 packets/s, with or without a recorder per call flushed every
    FLUSH_INTERVAL; and the flushes' share of it (0.0 unrecorded)."""
    from pbx.net.transport import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(_real_relay(record, calls, seconds, folder))
    finally:
        loop.close()


async def _real_relay(
    record: bool, calls: int, seconds: float, folder: Path
) -> tuple[float, float]:
    import asyncio
    import json
    import subprocess
    import sys

    loop = asyncio.get_running_loop()
    sender = subprocess.Popen([sys.executable, "-c", SENDER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert sender.stdin is not None and sender.stdout is not None
    sender.stdin.write(json.dumps([2 * calls, seconds + 1.5]) + "\n")
    sender.stdin.flush()
    phones = json.loads(await loop.run_in_executor(None, sender.stdout.readline))
    base = 20000 + 2 * random.randrange(5000)  # room to skip pairs other software holds
    relay = Relay(PortAllocator(base, base + 8 * calls + 63), bind_v4="127.0.0.1")
    sessions = []
    recorders: list[Recorder] = []
    targets: list[int] = []
    for i in range(calls):
        session = await relay.open_session(f"bench-{i}")
        session.set_remote(Leg.A, "127.0.0.1", phones[2 * i])
        session.set_remote(Leg.B, "127.0.0.1", phones[2 * i + 1])
        targets += [session.local(Leg.A).rtp, session.local(Leg.B).rtp]
        if record:
            recorder = Recorder(folder / f"{record}-{i}.wav", write_every=WRITE_EVERY)
            recorder.start(loop.time())
            session.set_tap(recorder.tap)
            recorders.append(recorder)
        sessions.append(session)

    flushed = [0.0, 0.0]  # CPU of the flushes: all, and at the start of the measured window

    def flush() -> None:
        started = time.process_time()
        flush_recorders(recorders, loop.time())
        flushed[0] += time.process_time() - started
        timer[0] = loop.call_later(FLUSH_INTERVAL, flush)

    timer = [loop.call_later(FLUSH_INTERVAL, flush)]
    sender.stdin.write(json.dumps(targets) + "\n")
    sender.stdin.close()

    def relayed() -> int:
        return sum(s.stats(leg).packets_in for s in sessions for leg in (Leg.A, Leg.B))

    await asyncio.sleep(0.5)  # latching and warm-up
    before = relayed(), time.process_time()
    flushed[1] = flushed[0]
    await asyncio.sleep(seconds)
    after = relayed(), time.process_time()
    flush_cpu = flushed[0] - flushed[1]
    timer[0].cancel()
    for recorder in recorders:
        recorder.close(loop.time())
    await relay.aclose()
    await loop.run_in_executor(None, sender.wait, 30)
    packets = max(after[0] - before[0], 1)
    return (after[1] - before[1]) / packets, flush_cpu / packets


class _PairedRelay:
    """`calls` plain and `calls` recorded calls on ONE relay (epoll reader, twins), fed by
    phone sockets of this process, the reader's rounds run directly and timed alone.

    Why: on a shared host the load swings by tens of percent within seconds, so two
    runs (plain, then recorded) measure the host as much as the recorder. Here the
    two kinds of calls take turns every 20 ms of a fake clock in one process, so both
    see the same load, the same relay and the same caches (the flushes run between
    the turns, as on the PBX's loop); the ratio is steady to about 0.01."""

    def __init__(self, calls: int, folder: Path) -> None:
        import functools
        import operator

        from pbx.net.transport import new_event_loop
        from pbx.tuning import raise_open_file_limit

        raise_open_file_limit()
        self.loop = new_event_loop()
        self.now = [1000.0]
        clock = functools.partial(operator.getitem, self.now, 0)  # a C call, as loop.time
        base = 20000 + 2 * random.randrange(4000)
        self.relay = Relay(PortAllocator(base, base + 16 * calls + 63), bind_v4="127.0.0.1",
                           clock=clock)  # fmt: skip
        self.phones: dict[bool, list[socket.socket]] = {False: [], True: []}
        self.recorders: list[Recorder] = []
        self.loop.run_until_complete(self._open(calls, folder))
        self.reader = self.relay._reader
        assert self.reader is not None, "the paired run needs the epoll reader (Linux)"

    async def _open(self, calls: int, folder: Path) -> None:
        for recorded in (False, True):
            for i in range(calls):
                session = await self.relay.open_session(f"paired-{recorded}-{i}")
                for leg in (Leg.A, Leg.B):
                    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    phone.bind(("127.0.0.1", 0))
                    phone.setblocking(False)
                    session.set_remote(leg, "127.0.0.1", phone.getsockname()[1])
                    phone.connect(("127.0.0.1", session.local(leg).rtp))
                    self.phones[recorded].append(phone)
                if recorded:
                    recorder = Recorder(folder / f"paired-{i}.wav", write_every=WRITE_EVERY)
                    recorder.start(self.now[0])
                    session.set_tap(recorder.tap)
                    self.recorders.append(recorder)

    def _turn(self, recorded: bool, seq: int) -> float:
        """Every phone of one kind sends packet `seq`; CPU seconds of relaying them."""
        self.now[0] += 0.01
        head = b"\x80\x00" + (seq & 0xFFFF).to_bytes(2, "big") + (seq * 160).to_bytes(4, "big")
        for i, phone in enumerate(self.phones[recorded]):
            phone.send(head + i.to_bytes(4, "big") + b"\xff" * PAYLOAD)
        started = time.process_time()
        while self.reader._round():  # type: ignore[union-attr]
            pass
        return time.process_time() - started

    def _sink(self) -> None:
        for phone in self.phones[False] + self.phones[True]:
            try:
                while True:
                    phone.recv(2048)
            except BlockingIOError:
                pass

    def run(self, ticks: int) -> tuple[float, float, float]:
        """(plain, recorded relaying, recorded flushes) CPU seconds per packet."""
        per_flush = round(FLUSH_INTERVAL / 0.02)
        warm = 2 * per_flush  # latching and the first (per-packet) flushes: not measured
        cpu = [0.0, 0.0, 0.0]
        for seq in range(warm + ticks):
            plain, recorded = self._turn(False, seq), self._turn(True, seq)
            flushed = 0.0
            if seq % per_flush == per_flush - 1:
                started = time.process_time()
                flush_recorders(self.recorders, self.now[0])
                flushed = time.process_time() - started
            if seq >= warm:
                cpu[0], cpu[1], cpu[2] = cpu[0] + plain, cpu[1] + recorded, cpu[2] + flushed
            self._sink()
        packets = ticks * len(self.phones[True])
        return cpu[0] / packets, cpu[1] / packets, cpu[2] / packets

    def close(self) -> None:
        for recorder in self.recorders:
            recorder.close(self.now[0])
        self.relay.close()
        self.loop.run_until_complete(_one_round())  # the ports' connection_lost callbacks
        self.loop.close()
        for phone in self.phones[False] + self.phones[True]:
            phone.close()


async def _one_round() -> None:
    import asyncio

    await asyncio.sleep(0)


def paired_relay(calls: int, ticks: int, folder: Path) -> tuple[float, float, float]:
    paired = _PairedRelay(calls, folder)
    try:
        return paired.run(ticks)
    finally:
        paired.close()


def run(quick: bool) -> list[Row]:
    seconds = 1.0 if quick else 3.0
    untapped, tapped, quality = relay_costs(seconds)
    with tempfile.TemporaryDirectory(prefix="deskpbx-bench-rec-") as tmp:
        rate, packets = recorder_throughput(seconds, Path(tmp))
    slow_path = tapped - untapped
    tap_cost = tap_call_cost(seconds)
    pairs = []
    with tempfile.TemporaryDirectory(prefix="deskpbx-bench-rec-") as tmp:
        for _ in range(1 if quick else 3):  # alternate, so load changes hit both alike
            pairs.append((real_relay(False, CALLS, seconds, Path(tmp)),
                          real_relay(True, CALLS, seconds, Path(tmp))))  # fmt: skip
    paired = []
    with tempfile.TemporaryDirectory(prefix="deskpbx-bench-rec-") as tmp:
        for _ in range(1 if quick else 3):
            paired.append(paired_relay(CALLS, 100 if quick else 250, Path(tmp)))
    p_plain, p_relayed, p_flush = sorted(paired, key=lambda r: r[0] / (r[1] + r[2]))[
        len(paired) // 2
    ]
    (plain, _), (recorded_real, flush_share) = sorted(
        pairs, key=lambda pair: pair[0][0] / pair[1][0]
    )[len(pairs) // 2]
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    note = "fake asyncio transport, real sendto; excludes recvfrom + loop (lower bound)"
    return [
        Row("relay packet, untapped (hot path)", untapped * 1e9, "ns CPU", note=note,
            command=COMMAND),
        Row("relay packet, tapped (hot path + tap)", tapped * 1e9, "ns CPU", note=note,
            command=COMMAND),
        Row("relay packet, call quality measured (quality=True)", quality * 1e9, "ns CPU",
            note="deferred tap + the sweep's header accounting", command=COMMAND),
        Row("tapped minus untapped relay packet", slow_path * 1e9, "ns CPU/packet",
            note="one clock read + the tap call", command=COMMAND),
        Row("Recorder.tap call (list append)", tap_cost * 1e9, "ns CPU/packet",
            goal="< 1000 ns", met=tap_cost < 1e-6, command=COMMAND),
        Row("recorder throughput (decode + WAV write)", rate, "packets/CPU-s",
            note=f"{packets} packets, 100 calls x 2 legs x 50 pps, flush_recorders every 200 ms",
            command=COMMAND),
        Row("recorded calls one core can write", rate / 100, "calls",
            note="recorder alone: 100 packets/s per call", command=COMMAND),
        Row("real relay packet CPU, unrecorded", plain * 1e9, "ns CPU",
            note=f"{CALLS} calls, both phones sending 50 pkt/s (a sender process), real loop",
            command=COMMAND),
        Row("real relay packet CPU, recorded", recorded_real * 1e9, "ns CPU",
            note=f"same, each call tapped into a Recorder flushed every {FLUSH_INTERVAL:g} s",
            command=COMMAND),
        Row("real relay packet CPU, recorded: the recorder's flushes", flush_share * 1e9,
            "ns CPU",
            note=f"flush_recorders every {FLUSH_INTERVAL:g} s, same run, inside the row above",
            command=COMMAND),
        Row("real relay packet CPU, recorded minus unrecorded", (recorded_real - plain) * 1e9,
            "ns CPU", note="the recorder's whole cost: tap on the hot path + flushes",
            command=COMMAND),
        Row("recorded / unrecorded capacity per core (real loop)", plain / recorded_real, "x",
            goal=">= 0.8", met=plain / recorded_real >= 0.8,
            note=f"median of {len(pairs)} alternating runs; {load}", command=COMMAND),
        Row("one relay, paired turns: packet CPU, unrecorded", p_plain * 1e9, "ns CPU",
            note=f"{CALLS} plain + {CALLS} recorded calls in one relay, taking turns every "
            "20 ms (fake clock); the reader's rounds only (no loop wake-ups)", command=COMMAND),
        Row("one relay, paired turns: packet CPU, recorded", (p_relayed + p_flush) * 1e9,
            "ns CPU", note=f"relaying {p_relayed * 1e9:.0f} + flushes {p_flush * 1e9:.0f}",
            command=COMMAND),
        Row("recorded / unrecorded capacity per core (one relay, paired)",
            p_plain / (p_relayed + p_flush), "x", goal=">= 0.8",
            met=p_plain / (p_relayed + p_flush) >= 0.8,
            note=f"median of {len(paired)} runs; steadier than the real loop on a busy host",
            command=COMMAND),
    ]  # fmt: skip
