"""RTP relay throughput and latency, and the same load through rtpengine.

Issue goals: >= 600 concurrent relayed calls (60,000 packets/s of 172-byte
G.711 RTP, 50 packets/s per direction per call) with < 0.1 % loss on one
core, p99 added latency < 2 ms, and >= 0.5x rtpengine's userspace rate.

How: `relay_load.c` (compiled with `cc -O2` into a temp dir) plays 2 phones
per call on CPU 1, paced, and reports sent/received/loss and one-way latency
percentiles from a send timestamp in each payload. The relay runs in its own
process (`relay_server.py`, uvloop) pinned to CPU 0. Each step opens N calls,
runs the load for a bounded time and steps N up until loss reaches 0.1 %.
Added latency = latency through the relay minus latency of the direct
loopback path (the generator's phones sending to each other) at 600 calls.
rtpengine (`relay_rtpengine.py`) gets the same steps. Figures are noisy when
other processes share the two cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench import relay_rtpengine
from tests.bench.rows import Row

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GOAL_CALLS = 600
LOSS_LIMIT = 0.001
HISTOGRAM_TOP_US = 100000  # relay_load.c's latency histogram ends at 100 ms
COMMAND = ".venv/bin/python -m tests.bench relay"
RELAY_CPU, LOAD_CPU = (0, 1) if (os.cpu_count() or 1) >= 2 else (0, 0)


def compile_load(folder: Path) -> Path:
    binary = folder / "relay_load"
    subprocess.run(
        ["cc", "-O2", "-o", str(binary), str(HERE / "relay_load.c")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return binary


def _pin(cpu: int) -> Any:
    def pin() -> None:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {cpu})

    return pin


def generate(
    load: Path, calls: int, seconds: float, targets_for: Callable[[list[int]], list[int]]
) -> dict[str, Any]:
    """Run the C load generator once; `targets_for(phone ports)` sets the relay up.

    The generator binds its phones on ports the kernel picks (so it never
    collides with other software on the host), prints them, and waits for
    the ports to send to; the result is its JSON summary.
    """
    args = [str(load), "-n", str(calls), "-d", str(seconds), "-w", "1"]
    proc = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_pin(LOAD_CPU),
    )
    watchdog = threading.Timer(seconds + 90, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        words = proc.stdout.readline().split()
        if not words or words[0] != b"ports":
            raise RuntimeError(f"relay_load failed: {proc.communicate()[1].decode().strip()}")
        targets = targets_for([int(word) for word in words[1:]])
        out, err = proc.communicate(" ".join(map(str, targets)).encode(), timeout=seconds + 15)
        if proc.returncode != 0:
            raise RuntimeError(f"relay_load failed: {err.decode().strip()}")
        return json.loads(out)  # type: ignore[no-any-return]
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def direct_step(load: Path, calls: int, seconds: float) -> dict[str, Any]:
    """The generator's phones send straight to each other: the loopback baseline."""
    return generate(load, calls, seconds, lambda ports: [ports[k ^ 1] for k in range(len(ports))])


def relay_step(
    load: Path, calls: int, seconds: float, sockets: str = "auto", coalesce: float = 0.0
) -> dict[str, Any]:
    """N calls through DeskPBX's relay in its own pinned process.

    `sockets` is the relay's socket reader (Relay(sockets=...)): "auto" is what the
    PBX runs (epoll on Linux); "transports" is the portable fallback. `coalesce` is
    Relay(coalesce=...), off in the PBX by default."""
    command = [sys.executable, "-m", "tests.bench.relay_server", "--cpu", str(RELAY_CPU)]
    command += ["--sockets", sockets, "--coalesce", str(coalesce)]
    proc = subprocess.Popen(
        command, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    watchdog = threading.Timer(seconds + 90, proc.kill)
    watchdog.start()
    assert proc.stdout is not None and proc.stdin is not None
    stdin, stdout = proc.stdin, proc.stdout

    def open_calls(phones: list[int]) -> list[int]:
        stdin.write(json.dumps(phones).encode() + b"\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"relay_server failed: {proc.communicate()[1].decode()[-800:]}")
        return list(json.loads(line)["targets"])

    try:
        result = generate(load, calls, seconds, open_calls)
        stdin.close()
        result["relay"] = totals = json.loads(stdout.readline() or b"{}")
        proc.wait(timeout=15)
        result["per_core"] = totals["packets_out"] / max(totals["cpu_seconds"], 1e-6)
        return result
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def rtpengine_step(load: Path, calls: int, seconds: float) -> dict[str, Any]:
    """N calls through rtpengine (userspace, one CPU), set up with ng offer/answer."""
    with relay_rtpengine.RtpEngine(cpu=RELAY_CPU) as engine:
        cpu: list[float] = []

        def open_calls(phones: list[int]) -> list[int]:
            targets = engine.open_calls(phones)
            cpu.append(engine.cpu_seconds())
            return targets

        result = generate(load, calls, seconds, open_calls)
        result["per_core"] = result["received_all"] / max(engine.cpu_seconds() - cpu[0], 1e-6)
        return result


def passed(result: dict[str, Any]) -> bool:
    return bool(result["loss"] < LOSS_LIMIT and result["misrouted"] == 0)


def climb(step: Any, load: Path, levels: list[int], seconds: float, deadline: float) -> tuple:
    """Step the call count up until loss reaches the limit; (best passing result, all results)."""
    best: dict[str, Any] | None = None
    results: dict[int, dict[str, Any]] = {}
    for calls in levels:
        if time.monotonic() + seconds + 5 > deadline:
            break
        try:
            result = step(load, calls, seconds)
        except RuntimeError as exc:  # the step could not be set up: the climb ends there
            print(f"   {step.__name__} {calls} calls: not run: {exc}", file=sys.stderr, flush=True)
            break
        results[calls] = result
        print(
            f"   {step.__name__} {calls} calls: {result['pps']:,.0f} pps, "
            f"loss {100 * result['loss']:.3f} %, p50 {result['p50_us']:.0f} us, "
            f"p99 {result['p99_us']:.0f} us, late sends {result['late_sends']}, "
            f"{result['per_core']:,.0f} pkt per CPU-second{_diagnostics(result)}",
            file=sys.stderr,
            flush=True,
        )
        if not passed(result):
            break
        best = result
    return best, results


def run(quick: bool) -> list[Row]:
    if shutil.which("cc") is None:
        return [Row("relay benchmark", 0, "", note="no C compiler (cc) to build relay_load.c")]
    seconds = 3.0 if quick else 6.0
    started = time.monotonic()
    budget = 55.0 if quick else 230.0
    levels = [300, 600, 900, 1200] if quick else [200, 400, 600, 800, 1000, 1200, 1400, 1600]
    with tempfile.TemporaryDirectory(prefix="deskpbx-bench-") as tmp:
        load = compile_load(Path(tmp))
        direct = direct_step(load, GOAL_CALLS, seconds)
        share = 0.55 if relay_rtpengine.available() is None else 0.95
        best, results = climb(relay_step, load, levels, seconds, started + budget * share)
        at_goal = results.get(GOAL_CALLS) or relay_step(load, GOAL_CALLS, seconds)
        rows = relay_rows(best, at_goal, direct)
        rows.append(fallback_row(load, seconds, at_goal))
        rows += coalesce_rows(load, seconds, results, at_goal, direct)
        rows += backlog_rows(quick)
        rows += rtpengine_rows(load, levels, seconds, started + budget, best, at_goal)
    return rows


def relay_rows(
    best: dict[str, Any] | None, at_goal: dict[str, Any], direct: dict[str, Any]
) -> list[Row]:
    calls = best["calls"] if best else 0
    pps = best["pps"] if best else 0.0
    added50 = (at_goal["p50_us"] - direct["p50_us"]) / 1000
    added99 = (at_goal["p99_us"] - direct["p99_us"]) / 1000
    baseline = f"direct loopback p50 {direct['p50_us']:.0f} us, p99 {direct['p99_us']:.0f} us"
    loop = "uvloop" if _has_uvloop() else "asyncio"
    starved = _starved(at_goal) or _starved(direct)
    p99_met = added99 < 2.0 and at_goal["p99_us"] < HISTOGRAM_TOP_US
    lag = "; load generator lagged (CPU shared with other work): figures pessimistic"
    return [
        Row("relay max calls, <0.1 % loss", calls, "calls", ">= 600", calls >= 600,
            f"{loop}, relay on CPU {RELAY_CPU}, load on CPU {LOAD_CPU}; "
            f"host load average {os.getloadavg()[0]:.1f} at the end", COMMAND),
        Row("relay packets/s at max calls", pps, "pkt/s", ">= 60,000", pps >= 60000,
            "172-byte RTP, both directions", COMMAND),
        Row("relay loss at 600 calls", 100 * at_goal["loss"], "%", "< 0.1 %",
            at_goal["loss"] < LOSS_LIMIT,
            f"{at_goal['received']:,} of {at_goal['sent']:,}" + (lag if starved else ""),
            COMMAND),
        Row("relay p50 added latency at 600 calls", added50, "ms", "", None, baseline, COMMAND),
        Row("relay p99 added latency at 600 calls", added99, "ms", "< 2 ms", p99_met,
            f"through relay p99 {at_goal['p99_us']:.0f} us" + (lag if starved else ""),
            COMMAND),
        Row("relay pkt/s per CPU-second at 600 calls", at_goal["per_core"], "pkt/s", "", None,
            "forwarded packets / relay process CPU time: capacity of one full core"
            + _diagnostics(at_goal), COMMAND),
        Row("relay calls per free core (projected)", at_goal["per_core"] / 100, "calls",
            ">= 600", at_goal["per_core"] >= 60000,
            "pkt per CPU-second / 100 pkt/s per call; holds when the core is not shared",
            COMMAND),
    ]  # fmt: skip


def fallback_row(load: Path, seconds: float, at_goal: dict[str, Any]) -> Row:
    """The same 600 calls with a transport per socket (the non-Linux path): the epoll
    reader's gain, measured minutes apart on the same host."""
    fallback = relay_step(load, GOAL_CALLS, seconds, sockets="transports")
    gain = at_goal["per_core"] / max(fallback["per_core"], 1e-6)
    return Row("relay pkt/s per CPU-second at 600 calls, transports", fallback["per_core"],
               "pkt/s", "", None,
               f"asyncio transport per socket (the fallback off Linux); the epoll reader does "
               f"{gain:.2f}x" + _diagnostics(fallback), COMMAND)  # fmt: skip


def coalesce_rows(
    load: Path,
    seconds: float,
    results: dict[int, dict[str, Any]],
    at_goal: dict[str, Any],
    direct: dict[str, Any],
) -> list[Row]:
    """200 and 600 calls again with Relay(coalesce=0.001), the opt-in interrupt
    moderation: CPU per packet and p99 against the default steps above."""
    rows = []
    for calls in (200, GOAL_CALLS):
        plain = at_goal if calls == GOAL_CALLS else results.get(calls)
        result = relay_step(load, calls, seconds, coalesce=0.001)
        added99 = (result["p99_us"] - direct["p99_us"]) / 1000
        versus = ""
        if plain is not None:
            versus = (
                f"; without: {plain['per_core']:,.0f} pkt per CPU-second, "
                f"p99 {plain['p99_us']:.0f} us"
            )
        rows.append(Row(f"relay pkt/s per CPU-second at {calls} calls, 1 ms coalescing",
                        result["per_core"], "pkt/s", "", None,
                        f"Relay(coalesce=0.001), off by default; loss "
                        f"{100 * result['loss']:.3f} %, p99 {result['p99_us']:.0f} us "
                        f"(added {added99:.2f} ms){versus}" + _diagnostics(result),
                        COMMAND))  # fmt: skip
    return rows


def backlog_rows(quick: bool) -> list[Row]:
    """CPU per packet of the epoll reader draining a backlog queued on every RTP socket of
    600 calls, in one pinned process (relay_server --backlog): no load generator and no
    wake-ups, so it holds on a shared host. Depth 1 is a relay behind by under 20 ms
    (50 packets/s per socket), depth 4 one far behind."""
    rows = []
    for depth in (1, 4):
        command = [sys.executable, "-m", "tests.bench.relay_server", "--cpu", str(RELAY_CPU)]
        command += ["--backlog", str(GOAL_CALLS), "--depth", str(depth)]
        command += ["--reps", "5" if quick else "15"]
        done = subprocess.run(command, cwd=REPO, capture_output=True, timeout=120, check=True)
        figures = json.loads(done.stdout)
        rows.append(Row(f"relay CPU per packet draining a backlog of {depth} per socket",
                        figures["best_us"], "us", "", None,
                        f"{GOAL_CALLS} calls, {depth} datagram(s) queued on each RTP socket, "
                        f"drained by the epoll reader in-process; best of fills, median "
                        f"{figures['median_us']:.1f} us",
                        COMMAND))  # fmt: skip
    return rows


def rtpengine_rows(
    load: Path,
    levels: list[int],
    seconds: float,
    deadline: float,
    best: dict[str, Any] | None,
    at_goal: dict[str, Any],
) -> list[Row]:
    why = relay_rtpengine.available()
    if why is None:
        try:
            engine_best, results = climb(rtpengine_step, load, levels, seconds, deadline)
            engine_goal = results.get(GOAL_CALLS) or rtpengine_step(load, GOAL_CALLS, seconds)
        except RuntimeError as exc:
            why = str(exc)
    if why is not None:
        return [Row("rtpengine packets/s", 0, "pkt/s", "", None, f"not run: {why}", COMMAND)]
    engine_pps = engine_best["pps"] if engine_best else 0.0
    relay_pps = best["pps"] if best else 0.0
    ratio = relay_pps / engine_pps if engine_pps else 0.0
    per_core = at_goal["per_core"] / engine_goal["per_core"] if engine_goal["per_core"] else 0.0
    note = f"userspace (table=-1), 1 thread, CPU {RELAY_CPU}"
    if engine_best is not None and engine_best["calls"] == levels[-1]:
        note += f"; still clean at the top step ({levels[-1] * 100:,} pkt/s): a lower bound"
    return [
        Row("rtpengine packets/s, <0.1 % loss", engine_pps, "pkt/s", "", None, note, COMMAND),
        Row("rtpengine pkt/s per CPU-second at 600 calls", engine_goal["per_core"], "pkt/s",
            "", None, "received packets / daemon CPU time", COMMAND),
        Row("relay / rtpengine max packet rate", ratio, "x", ">= 0.5", ratio >= 0.5, "", COMMAND),
        Row("relay / rtpengine pkt per CPU-second", per_core, "x", ">= 0.5", per_core >= 0.5,
            "robust to other load on the cores", COMMAND),
    ]  # fmt: skip


def _diagnostics(result: dict[str, Any]) -> str:
    """User/system CPU per packet and what held the relay's loop (relay_server.PauseWatch)."""
    relay = result.get("relay")
    if not relay or "user_seconds" not in relay:
        return ""
    packets = max(relay["packets_out"], 1)
    return (
        f" (user {1e6 * relay['user_seconds'] / packets:.1f} us + system "
        f"{1e6 * relay['system_seconds'] / packets:.1f} us per packet; "
        f"{relay.get('sleeps', 0) / packets:.2f} wake-ups per packet; loop late by up to "
        f"{relay['loop_late_max_ms']:.1f} ms; GC runs {relay['gc_gen0']:.0f}/"
        f"{relay['gc_gen1']:.0f}/{relay['gc_gen2']:.0f}, longest {relay['gc_max_ms']:.1f} ms"
        f"{_stalls(relay)})"
    )


def _stalls(relay: dict[str, Any]) -> str:
    """Who held the loop: our callbacks (longest reader round, sweep tick, late wake-up while
    running) or the scheduler (time runnable but waiting for the CPU, from schedstat)."""
    if "round_max_ms" not in relay:
        return ""
    rounds = (
        f"longest reader round {relay['round_max_ms']:.1f} ms"
        if relay.get("rounds_timed", True)
        else "reader rounds not timed (transports or coalescing)"
    )
    return (
        f"; {rounds}, sweep tick "
        f"{relay['sweep_max_ms']:.2f} ms; late while running up to {relay['late_own_max_ms']:.1f}"
        f" ms, while waiting for the CPU up to {relay['late_sched_max_ms']:.1f} ms; "
        f"{1000 * relay['sched_waited_s']:.0f} ms run-queue wait in all; rounds behind (a "
        f"whole batch ready) {relay['behind_rounds_warmup']:.0f} in the warm-up, "
        f"{relay['behind_rounds_later']:.0f} later, the last {relay['behind_last_s']:.2f} s in"
    )


def _starved(result: dict[str, Any]) -> bool:
    """The generator fell behind its schedule for more than 1 % of its packets."""
    return bool(result["late_sends"] > 0.01 * max(result["sent"], 1))


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
