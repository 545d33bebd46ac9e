"""Where a registration's server CPU goes in a real run: the REGISTER lane's Python work, the
sends, and the rest (receiving, the event loop, the store's flusher thread, the kernel).

bench_register runs this at a clean rate after its search. The PBX is the shipped `deskpbx
serve`, started through this module's runner (`python -m tests.bench.register_split <deskpbx
arguments>`), which wraps three methods with thread CPU clocks and writes the totals to its
log when it exits; nothing else changes. Compared with the in-process figure
(tests/bench/register_cpu.py, the same lane fed in a tight loop with no sockets), it shows how
much of the gap is the system calls themselves and how much is the same Python code running
slower between them.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.bench import sip_load as load

MARK = "REGISTER-SPLIT "


@dataclass(frozen=True, slots=True)
class Split:
    rate: float
    registrations: int
    process_ms: float
    """Process CPU (all threads, user + system) per registration."""
    lane_ms: float
    """RegisterLane.handle: parse, digest, registrar, answer bytes."""
    send_ms: float
    """UdpListener.send: the sendto system calls (and their Python wrapper)."""

    @property
    def rest_ms(self) -> float:
        return self.process_ms - self.lane_ms - self.send_ms


def measure(
    workdir: Path, extensions: list[str], inject: Path, scenario: Path, rate: float,
    seconds: float, cores: tuple[set[int] | None, set[int] | None],
) -> Split | None:  # fmt: skip
    """One SIPp run of `seconds` at `rate` against an instrumented PBX; None if not clean."""
    server, generator = cores
    port = load.free_port()
    args = load.pbx_command(load.pbx_data(workdir, extensions), port, "30000-31999")
    args = [sys.executable, "-m", "tests.bench.register_split", *args[3:]]  # not `-m pbx.cli`
    with load.running(lambda: load.spawn("split", args, workdir, port, server)) as pbx:
        time.sleep(0.5)
        step = load.run_sipp(
            scenario, pbx.address, rate=rate, calls=max(1, int(rate * seconds)), inject=inject,
            workdir=workdir, cores=generator, timeout_s=10, server=pbx,
        )  # fmt: skip
    if not step.clean:
        return None
    lines = [x for x in pbx.log.read_text().splitlines() if x.startswith(MARK)]
    if not lines:
        return None
    totals = json.loads(lines[-1][len(MARK) :])
    per = 1e-6 / step.successful
    return Split(rate, step.successful, step.cpu_per_call_ms,
                 totals["lane_ns"] * per, totals["send_ns"] * per)  # fmt: skip


def _instrument() -> dict[str, int]:
    """Wrap the lane and the UDP send with thread CPU clocks (main thread only)."""
    from pbx import registrar_lane
    from pbx.net import udp

    totals = {"lane_ns": 0, "send_ns": 0}
    clock = time.thread_time_ns
    handle, send = registrar_lane.RegisterLane.handle, udp.UdpListener.send

    def timed_handle(self, data, source, now):  # type: ignore[no-untyped-def]
        started = clock()
        try:
            return handle(self, data, source, now)
        finally:
            totals["lane_ns"] += clock() - started

    def timed_send(self, data, destination):  # type: ignore[no-untyped-def]
        started = clock()
        try:
            send(self, data, destination)
        finally:
            totals["send_ns"] += clock() - started

    registrar_lane.RegisterLane.handle = timed_handle  # type: ignore[method-assign]
    udp.UdpListener.send = timed_send  # type: ignore[method-assign]
    return totals


def main(argv: list[str]) -> int:
    totals = _instrument()
    from pbx.cli import main as deskpbx

    try:
        return deskpbx(argv)
    finally:
        print(MARK + json.dumps(totals), file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
