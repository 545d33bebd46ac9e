"""Call setups per second through DeskPBX's B2BUA, driven by SIPp on 127.0.0.1.

One "call" is one SIPp call of tests/bench/sipp/uac_call_nortp.xml: INVITE, 407, ACK, INVITE
with credentials, 100/180/200, ACK, a short hold, BYE, 200 (RFC 3261 §13, §15, §22.3). The
PBX authenticates the caller, looks up the callee's binding, opens relay ports, forwards the
INVITE as a second leg to a server-mode SIPp (tests/bench/sipp/uas_answer_nortp.xml) that
rings and answers at once, then tears both legs down and writes a CDR. The INVITE carries an
SDP offer (the relay needs one) but no RTP flows.

The callee SIPp first registers from the port it then answers on: the PBX sends requests to
the address a REGISTER came from (RFC 3581 symmetric response routing, as for phones behind
NAT). Callers rotate over 100 extensions. The PBX is pinned to one core, both SIPps to the
other; the offered rate steps up until a step fails a call or falls behind. Goal: >= 300
call setups/s with 0 failed calls.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench import calls_cpu
from tests.bench import sip_load as load
from tests.bench.rows import Row
from tests.integration.ports import free_port

COMMAND = ".venv/bin/python -m tests.bench calls"
CPU_COMMAND = ".venv/bin/python -m tests.bench.calls_cpu"
GOAL_PER_S = 300.0
GOAL_CPU_MS = 2.5  # server CPU per call that leaves SIPp room for 300 calls/s on 2 cores
CALLERS = 100
CALLEE = "2999"
HOLD_MS = 100
SETTLE_S = 1.0
# 4 relay ports a call, 500 calls at once; below the kernel's ephemeral ports and clear of the
# ranges the relay benchmarks (40000-57999, NG 22230) and the integration tests (40000+) use
RTP_PORTS = "30000-31999"
CALLER_SCENARIO = load.SCENARIOS / "uac_call_nortp.xml"
CALLEE_SCENARIO = load.SCENARIOS / "uas_answer_nortp.xml"


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _register_callee(pbx: load.Child, port: int, workdir: Path) -> None:
    inject = load.auth_csv(workdir, [[CALLEE, load.auth_field(CALLEE)]])
    args = load.sipp_args(
        load.SCENARIOS / "register_auth.xml", port, remote=pbx.address, inject=inject,
        calls=1, timeout_s=10, stats=workdir / "callee-register.csv",
    )  # fmt: skip
    done = subprocess.run(args, cwd=workdir, capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"callee registration failed: {done.stdout.decode()[-1500:]}")


def _start_callee(port: int, workdir: Path, cores: set[int] | None) -> load.Child:
    """A server-mode SIPp answering every INVITE; -aa answers OPTIONS, no -m: it runs until
    stopped."""
    args = load.sipp_args(CALLEE_SCENARIO, port, timeout_s=600, extra=("-aa",))
    args.remove("-timeout_error")
    log = workdir / "callee.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip
    load.pin(proc.pid, cores)
    return load.Child("callee-sipp", proc, port, log, workdir)


def _stepper(
    pbx: load.Child, inject: Path, workdir: Path, seconds: float, cores: set[int] | None
) -> Callable[[float], load.Step]:
    def step(rate: float) -> load.Step:
        time.sleep(SETTLE_S)  # let the previous step's calls and CDR writes drain
        return load.run_sipp(
            CALLER_SCENARIO, pbx.address, rate=rate, calls=max(1, int(rate * seconds)),
            inject=inject, workdir=workdir, cores=cores, timeout_s=15, server=pbx,
            extra=("-d", str(HOLD_MS)),
        )  # fmt: skip

    return step


def _measure(
    workdir: Path, quick: bool, what_if: tuple[str, ...] = (), profile: bool = True
) -> tuple[load.Search, str]:
    server_cores, generator = load.cpu_split()
    callers = load.users(CALLERS)
    inject = load.auth_csv(workdir, [[c, load.auth_field(c), CALLEE] for c in callers])
    seconds, steps, confirm, budget = (2.0, 7, 0, 35.0) if quick else (5.0, 11, 1, 110.0)
    spots = ""
    factory = lambda: load.start_pbx(  # noqa: E731
        workdir,
        [*callers, CALLEE],
        rtp_ports=RTP_PORTS,
        cores=server_cores,
        what_if=what_if,
    )
    with load.running(factory) as pbx:
        port = free_port()
        _register_callee(pbx, port, workdir)
        callee = _start_callee(port, workdir, generator)
        try:
            step = _stepper(pbx, inject, workdir, seconds, generator)
            _log(f"   deskpbx: {seconds:.0f} s per step, hold {HOLD_MS} ms, x1.5 from 60/s")
            search = load.search_rate(
                step, start=60.0, factor=1.5, max_steps=steps, budget_s=budget, confirm=confirm
            )
            if profile and search.best is not None:
                rate = search.best.rate * 0.8
                with load.profiled(pbx.proc.pid, seconds, workdir / "calls.pyspy") as raw:
                    step(rate)
                found = load.hot_spots(raw)
                if found:
                    _log(f"   deskpbx hot spots at {rate:.0f} calls/s (py-spy, by self time):")
                    _log(load.describe_hot_spots(found))
                    spots = load.describe_areas(load.area_shares(raw))
        finally:
            callee.stop(grace=5)
    return search, spots


def _figure(search: load.Search) -> tuple[float, str]:
    best = search.best
    if best is None:
        return 0.0, "no clean step; " + search.summary()
    cpu = load.cpu_note(best, "call")
    return best.achieved, (
        f"1 call = INVITE, 407, ACK, INVITE+auth, 100, 180, 200, ACK, {HOLD_MS} ms, BYE, 200; "
        f"SDP relayed, no RTP; {len(search.best_runs)} runs of {best.calls} calls at "
        f"{best.rate:.0f}/s offered, 0 failed, {search.best_retransmissions} retransmissions; "
        f"{cpu + '; ' if cpu else ''}{search.summary()}"
    )


def _in_process_row(quick: bool) -> Row:
    """Server CPU per call with no SIP sockets and no SIPp (tests/bench/calls_cpu.py): the
    figure to compare before/after a change on a busy machine."""
    calls = 200 if quick else 1000
    result = calls_cpu.run_measure(calls, budget_s=10.0 if quick else 30.0)
    overall = result.ms_per_call
    ceiling = 1000 / overall if overall else 0.0
    return Row("calls: call setup CPU, in-process", overall, "ms/call", f"<= {GOAL_CPU_MS} ms/call",
               overall <= GOAL_CPU_MS,
               f"CPU over all {result.calls} calls (GC and CDR writes included); best block of "
               f"{calls_cpu.BLOCK} calls {1000 * result.best_s:.2f} ms, median block "
               f"{1000 * result.median_s:.2f} ms; fed to "
               f"UdpListener.datagram_received (INVITE, 407, ACK, INVITE+auth, 100, leg B "
               f"INVITE/100/180/200/ACK, 180, 200, ACK, BYE, leg B BYE/200, 200; relay ports "
               f"bound, CDR written); single-thread ceiling {ceiling:,.0f} calls/s",
               f"{CPU_COMMAND} {calls}")  # fmt: skip


def run(quick: bool) -> list[Row]:
    cpu_row = _in_process_row(quick)
    if load.SIPP is None:
        return [Row("calls: DeskPBX call setups", 0, "calls/s",
                    note="sipp not installed (sip-tester)", command=COMMAND), cpu_row]  # fmt: skip
    machine = f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at start"
    with load.workspace("bench-calls-") as workdir:
        search, spots = _measure(workdir, quick)
    value, note = _figure(search)
    hot = f"; where PBX time goes (py-spy, inclusive): {spots}" if spots else ""
    rows = [
        Row("calls: DeskPBX authenticated call setups", value, "calls/s",
            f">= {GOAL_PER_S:,.0f} calls/s", value >= GOAL_PER_S,
            f"{note}; {machine}{hot}", COMMAND),
        cpu_row,
    ]  # fmt: skip
    for tweak in load.what_ifs_requested():
        _log(f"   what-if: {tweak}")
        with load.workspace(f"bench-calls-{tweak}-") as workdir:
            tweak_search, _ = _measure(workdir, quick, (tweak,), profile=False)
        tweak_value, tweak_note = _figure(tweak_search)
        rows.append(Row(f"calls: what-if DeskPBX + {tweak}", tweak_value, "calls/s", "", None,
                        f"not the shipped PBX: {load.WHAT_IFS[tweak][1]}; {tweak_note}",
                        f"DESKPBX_BENCH_WHAT_IF={tweak} {COMMAND}"))  # fmt: skip
    return rows
