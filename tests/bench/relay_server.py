"""DeskPBX's RTP relay in a process of its own, for bench_relay.

`python -m tests.bench.relay_server` pins itself to one CPU, reads one JSON
line from stdin, the load generator's phone ports [A0, B0, A1, B1, ...], opens
one relay session per call whose legs point at those ports (as the B2BUA would
from SDP), prints one JSON line `{"targets": [...]}` (the relay port each
phone sends to), relays
until stdin closes, then prints the summed relay counters, the CPU seconds
(user and system) the process used meanwhile and pause diagnostics
(`PauseWatch`) as a JSON line. Like `deskpbx serve`, it raises its open file limit
before binding and tunes the collector (`pbx.tuning.tune_gc`) before the calls
open (`--gc default` leaves CPython's settings, for comparison).

`--backlog CALLS` measures instead, in this one process, the CPU per packet
of the epoll reader draining a backlog (`backlog`): no load generator, no
wake-ups, so the figure holds on a host shared with other work.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import os
import resource
import socket
import struct
import sys
import time
from collections.abc import Callable

from pbx.media.ports import PortAllocator
from pbx.media.relay import Leg, Relay, RelaySession
from pbx.media.relay_poll import EpollReader
from pbx.tuning import raise_open_file_limit, tune_gc

WARMUP = 1.0
"""Seconds from the first datagram that bench_relay's load generator leaves out (`-w 1`)."""
LAG_BUCKETS_MS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Upper bounds of the histograms' buckets; a last bucket holds everything longer."""


class Histogram:
    """Counts of durations (seconds) per LAG_BUCKETS_MS bucket, and the longest."""

    __slots__ = ("counts", "longest")

    def __init__(self) -> None:
        self.counts = [0] * (len(LAG_BUCKETS_MS) + 1)
        self.longest = 0.0

    def clear(self) -> None:
        self.counts[:] = [0] * len(self.counts)
        self.longest = 0.0

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LAG_BUCKETS_MS, 1000 * seconds)] += 1
        if seconds > self.longest:
            self.longest = seconds

    def figures(self, name: str) -> dict[str, float]:
        labels = [f"le{b:g}ms" for b in LAG_BUCKETS_MS] + [f"gt{LAG_BUCKETS_MS[-1]:g}ms"]
        pairs = zip(labels, self.counts, strict=True)
        out: dict[str, float] = {f"{name}_{label}": n for label, n in pairs}
        out[f"{name}_max_ms"] = 1000 * self.longest
        return out


def _schedstat() -> Callable[[], tuple[float, float]]:
    """(seconds on the CPU, seconds runnable but waiting for it) of this thread so far,
    from /proc/thread-self/schedstat; zeros where the kernel has none."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return lambda: (0.0, 0.0)

    def read() -> tuple[float, float]:
        ran, waited, _slices = os.pread(fd, 128, 0).split()
        return int(ran) / 1e9, int(waited) / 1e9

    return read


class PauseWatch:
    """Diagnostics of what holds the relay's loop.

    - A 10 ms probe timer: how late each wake-up is (histogram `late`), and whether
      the thread spent that lateness waiting for the CPU (the kernel's run-queue
      delay from schedstat: another process had the core, `late_sched`) or running
      (our own callbacks held the loop, `late_own`).
    - How long each epoll reader round (`round`) and each latch sweep tick (`sweep`)
      takes, and each garbage collection per generation (`gc`).
    - How many reader rounds found a whole batch of ready sockets (the relay was
      behind) within the warm-up and after it, and when the last one was.
    Once the warm-up is over (WARMUP seconds after the first datagram) everything but
    the behind counts starts afresh, so the figures cover the generator's window;
    GC runs per generation still count from the start.
    The probe costs 100 wake-ups and schedstat reads a second; timing a round about
    0.4 us CPU (some 0.3 % of a 600-call relay's CPU)."""

    PERIOD = 0.01

    def __init__(self, loop: asyncio.AbstractEventLoop, relay: Relay) -> None:
        self.loop = loop
        self.late_max = 0.0
        self.late = Histogram()
        self.late_own = Histogram()
        self.late_sched = Histogram()
        self.rounds = Histogram()
        self.sweeps = Histogram()
        self.gcs = Histogram()
        self.gc_runs = [0, 0, 0]
        self._gc_start = 0.0
        self._sched = _schedstat()
        self._sched_start = self._sched()
        self._sched_last = self._sched_start
        self._due = loop.time() + self.PERIOD
        self._handle = loop.call_at(self._due, self._probe)
        gc.callbacks.append(self._on_gc)
        self.measuring = False  # the warm-up is over (see _warmed_up)
        self.behind_warmup = 0
        self.behind_later = 0
        self.behind_last = 0.0
        self._time_callbacks(relay)

    def _time_callbacks(self, relay: Relay) -> None:
        reader = relay._reader
        self.rounds_timed = reader is not None and not reader.coalesce
        if reader is not None and not reader.coalesce:
            fd = reader._epoll.fileno()
            self.loop.remove_reader(fd)
            self.loop.add_reader(fd, self._timed_round(reader))
        relay._on_timer = self._timed(relay._on_timer, self.sweeps)  # type: ignore[method-assign]

    def _timed_round(self, reader: EpollReader) -> Callable[[], None]:
        """The reader's loop callback (`_ready` is `_round` when not coalescing), timed, and
        counting rounds that found a whole batch of ready sockets (the relay is behind):
        those in the load generator's 1 s warm-up (latching 1,200 legs, twins) and later."""
        clock, add, batch = time.perf_counter, self.rounds.add, reader.batch
        first = [0.0]

        def timed() -> None:
            started = clock()
            count = reader._round()
            add(clock() - started)
            if not first[0]:
                if not count:
                    return
                first[0] = started
            since = started - first[0]
            if since >= WARMUP and not self.measuring:
                self._warmed_up()
            if count >= batch:
                self.behind_last = since
                if since < WARMUP:
                    self.behind_warmup += 1
                else:
                    self.behind_later += 1

        return timed

    def _warmed_up(self) -> None:
        """The load generator's warm-up is over: the histograms and the run-queue wait start
        afresh, so they describe the window whose latencies the generator measures."""
        self.measuring = True
        for hist in (self.late, self.late_own, self.late_sched, self.rounds, self.sweeps):
            hist.clear()
        self.gcs.clear()
        self.late_max = 0.0
        self._sched_start = self._sched()

    @staticmethod
    def _timed(callback: Callable[[], object], into: Histogram) -> Callable[[], None]:
        clock, add = time.perf_counter, into.add

        def timed() -> None:
            started = clock()
            callback()
            add(clock() - started)

        return timed

    def _probe(self) -> None:
        now = self.loop.time()
        late = now - self._due
        sched = self._sched()
        waited = sched[1] - self._sched_last[1]
        self._sched_last = sched
        self.late_max = max(self.late_max, late)
        self.late.add(late)
        (self.late_sched if waited >= late / 2 else self.late_own).add(late)
        self._due = now + self.PERIOD
        self._handle = self.loop.call_at(self._due, self._probe)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
            return
        self.gc_runs[info["generation"]] += 1
        self.gcs.add(time.perf_counter() - self._gc_start)

    def stop(self) -> None:
        self._handle.cancel()
        gc.callbacks.remove(self._on_gc)

    def figures(self) -> dict[str, float]:
        sched = self._sched()
        out = {
            "loop_late_max_ms": 1000 * self.late_max,
            "gc_gen0": self.gc_runs[0],
            "gc_gen1": self.gc_runs[1],
            "gc_gen2": self.gc_runs[2],
            "gc_max_ms": 1000 * self.gcs.longest,
            "sched_ran_s": sched[0] - self._sched_start[0],
            "sched_waited_s": sched[1] - self._sched_start[1],
            "after_warmup": self.measuring,
            "rounds_timed": self.rounds_timed,
            "behind_rounds_warmup": self.behind_warmup,
            "behind_rounds_later": self.behind_later,
            "behind_last_s": self.behind_last,
        }
        for name, hist in (
            ("late", self.late), ("late_own", self.late_own), ("late_sched", self.late_sched),
            ("round", self.rounds), ("sweep", self.sweeps), ("gc", self.gcs),
        ):  # fmt: skip
            out.update(hist.figures(name))
        return out


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            return asyncio.new_event_loop
        return uvloop.new_event_loop
    return asyncio.new_event_loop


async def serve(args: argparse.Namespace) -> dict[str, float]:
    relay = Relay(
        PortAllocator(args.low, args.high),
        bind_v4="127.0.0.1",
        sockets=args.sockets,
        coalesce=args.coalesce,
    )
    sessions: list[RelaySession] = []
    targets: list[int] = []
    loop = asyncio.get_running_loop()
    phones = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    if args.gc == "serve":
        tune_gc()  # as `deskpbx serve` does once it listens, before any call
    for i in range(0, len(phones), 2):
        session = await relay.open_session(f"bench-{i // 2}")
        session.set_remote(Leg.A, "127.0.0.1", phones[i])
        session.set_remote(Leg.B, "127.0.0.1", phones[i + 1])
        targets += [session.local(Leg.A).rtp, session.local(Leg.B).rtp]
        sessions.append(session)
    print(json.dumps({"targets": targets}), flush=True)
    watch = PauseWatch(loop, relay)
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = time.process_time()
    await loop.run_in_executor(None, sys.stdin.read)
    cpu_seconds = time.process_time() - cpu_before
    after = resource.getrusage(resource.RUSAGE_SELF)
    watch.stop()
    totals: dict[str, float] = {"packets_in": 0, "packets_out": 0, "dropped": 0, "rejected": 0}
    totals["cpu_seconds"] = cpu_seconds
    totals["user_seconds"] = after.ru_utime - before.ru_utime
    totals["system_seconds"] = after.ru_stime - before.ru_stime
    totals["sleeps"] = after.ru_nvcsw - before.ru_nvcsw  # the relay went idle and was woken
    totals.update(watch.figures())
    for session in sessions:
        for leg in Leg:
            stats = session.stats(leg)
            totals["packets_in"] += stats.packets_in
            totals["packets_out"] += stats.packets_out
            totals["dropped"] += stats.dropped
            totals["rejected"] += stats.rejected
    await relay.aclose()
    totals["open_transports_after_close"] = relay.open_transports
    return totals


async def backlog(args: argparse.Namespace) -> dict[str, float]:
    """CPU per relayed packet while the epoll reader drains `--depth` datagrams queued on
    every RTP socket of `--backlog` latched calls (phones are sockets in this process).

    A relay that fell behind (a GC run, a busy neighbour, a burst) has such a backlog:
    how fast it drains it decides whether it catches up. Best and median of `--reps`
    fills; the phones' sends and reads are outside the timed part."""
    relay = Relay(PortAllocator(args.low, args.high), bind_v4="127.0.0.1", sockets="epoll")
    phones: list[tuple[socket.socket, tuple[str, int]]] = []
    sessions = []
    for index in range(args.backlog):
        session = await relay.open_session(f"backlog-{index}")
        for leg in Leg:
            phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            phone.bind(("127.0.0.1", 0))
            phone.setblocking(False)
            phone.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            session.set_remote(leg, "127.0.0.1", phone.getsockname()[1])
            phones.append((phone, ("127.0.0.1", session.local(leg).rtp)))
        sessions.append(session)
    reader = relay._reader
    assert reader is not None
    packet = struct.pack("!BBHII", 0x80, 0, 1, 160, 0x1234) + b"\xff" * 160

    def fill(depth: int) -> None:
        for phone, target in phones:
            for _n in range(depth):
                phone.sendto(packet, target)

    def drain_phones() -> None:
        for phone, _target in phones:
            for _n in range(4 * args.depth + 4):  # bounded: what the relay sent, and more
                try:
                    phone.recv(2048)
                except BlockingIOError:
                    break

    def forwarded() -> int:
        return sum(s.stats(Leg.A).packets_out + s.stats(Leg.B).packets_out for s in sessions)

    def drain_relay() -> None:
        for _round in range(100 * len(phones) * args.depth):  # bounded; ends when idle
            if reader._round() == 0:
                return

    fill(1)  # latch every leg
    drain_relay()
    drain_phones()
    per_packet = []
    for _rep in range(args.reps):
        fill(args.depth)
        before = forwarded()
        started = time.process_time()
        drain_relay()
        cpu = time.process_time() - started
        per_packet.append(cpu / max(forwarded() - before, 1))
        drain_phones()
    await relay.aclose()
    for phone, _target in phones:
        phone.close()
    per_packet.sort()
    return {"best_us": 1e6 * per_packet[0], "median_us": 1e6 * per_packet[len(per_packet) // 2]}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.relay_server")
    # Below the kernel's ephemeral range (32768-60999 on Linux), where the load
    # generator's phones bind: a relay range inside it ran out of pairs at 1,600 calls.
    parser.add_argument("--low", type=int, default=10000)
    parser.add_argument("--high", type=int, default=19999)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--sockets", choices=["auto", "epoll", "transports"], default="auto")
    parser.add_argument("--coalesce", type=float, default=0.0, help="seconds (Relay coalesce)")
    parser.add_argument("--backlog", type=int, default=0, help="calls: measure a backlog drain")
    parser.add_argument("--depth", type=int, default=1, help="datagrams queued per socket")
    parser.add_argument("--reps", type=int, default=10, help="backlog fills measured")
    parser.add_argument(
        "--gc",
        choices=["serve", "default"],
        default="serve",
        help="serve: pbx.tuning.tune_gc() before the calls, as `deskpbx serve`; default: "
        "CPython's collector settings",
    )
    args = parser.parse_args()
    raise_open_file_limit()  # as `deskpbx serve` does before the relay binds (twin budget)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        totals = runner.run(backlog(args) if args.backlog else serve(args))
    print(json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
