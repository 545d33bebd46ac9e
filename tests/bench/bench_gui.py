"""deskphone: time from launch to the first shown window, and idle CPU of the running app.

Starts `python -m app.main` offscreen (QT_QPA_PLATFORM=offscreen) with a fresh
data dir and the embedded PBX on a free 127.0.0.1 port, measures until it
prints that its window is shown (after the first event-loop turn), then reads
the process's CPU time (/proc/<pid>/stat, all threads: GUI, PBX loop, UA) over
an idle window of a few seconds. Linux only.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.rows import Row
from tests.integration.ports import free_port

REPO = Path(__file__).resolve().parents[2]
COMMAND = ".venv/bin/python -m tests.bench gui"
LAUNCH_GOAL = 1.5
CPU_GOAL = 1.0
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def launch(tmp: Path) -> tuple[subprocess.Popen[str], float, float]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    command = [sys.executable, "-m", "app.main", "--data-dir", str(tmp / "pbx"),
               "--config-dir", str(tmp / "config"), "--listen", f"127.0.0.1:{free_port()}",
               "--report-shown"]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    deadline = started + 30
    shown = 0.0
    for line in proc.stdout:
        if "window shown" in line:
            shown = time.perf_counter() - started
        elif "registered" in line and shown:
            return proc, shown, time.perf_counter() - started
        if time.perf_counter() > deadline:
            break
    proc.kill()
    raise RuntimeError("deskphone did not show its window and register within 30 s")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run(quick: bool) -> list[Row]:
    launches: list[float] = []
    ready: list[float] = []
    cpu_percent = 0.0
    idle_seconds = 3.0 if quick else 10.0
    for attempt in range(2 if quick else 5):
        with tempfile.TemporaryDirectory() as tmp:
            proc, seconds, registered = launch(Path(tmp))
            try:
                launches.append(seconds)
                ready.append(registered)
                if attempt == 0:
                    time.sleep(1.0)  # let registration and the first refresh settle
                    before, t0 = cpu_seconds(proc.pid), time.perf_counter()
                    time.sleep(idle_seconds)
                    used = cpu_seconds(proc.pid) - before
                    cpu_percent = 100.0 * used / (time.perf_counter() - t0)
            finally:
                stop(proc)
    median = statistics.median(launches)
    return _echo_rows() + [
        Row("deskphone launch to first shown window (median)", median, "s", f"< {LAUNCH_GOAL} s",
            median < LAUNCH_GOAL, f"{len(launches)} launches, offscreen, fresh data dir; "
            f"min {min(launches):.2f} s, max {max(launches):.2f} s", COMMAND),
        Row("deskphone launch to registered with its embedded PBX (median)",
            statistics.median(ready), "s", "", None, "PBX started, extension created, "
            f"UA registered; max {max(ready):.2f} s", COMMAND),
        Row("deskphone idle CPU (all threads)", cpu_percent, "% of a core", f"< {CPU_GOAL} %",
            cpu_percent < CPU_GOAL, f"over {idle_seconds:g} s idle, registered, no call; "
            f"/proc CPU ticks of 1/{TICKS} s",
            COMMAND),
    ]  # fmt: skip


def _echo_rows() -> list[Row]:
    from app.echo import EchoCanceller, synthetic_echo_erle

    if not EchoCanceller.available():
        return [Row("echo cancellation ERLE", 0, "dB", ">= 25 dB", None, "libspeexdsp missing")]
    started = time.perf_counter()
    erle, near_loss = synthetic_echo_erle()
    cpu = (time.perf_counter() - started) / 10.0 * 100
    return [
        Row("echo cancellation ERLE (speexdsp AEC + preprocessor)", erle, "dB", ">= 25 dB",
            erle >= 25, f"synthetic room, 200 ms tail; near-end voice loss {near_loss:.1f} dB; "
            f"{cpu:.1f} % of a core for 8 kHz audio", COMMAND),
    ]  # fmt: skip
