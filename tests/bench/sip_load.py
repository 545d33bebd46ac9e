"""Shared pieces of the SIP load benchmarks (bench_register, bench_calls).

The servers under test run as child processes on 127.0.0.1: DeskPBX (`python -m pbx.cli serve`)
and, for comparison, Kamailio with a config generated from tests/bench/kamailio/kamailio.cfg.
SIPp (Debian package sip-tester) is the load generator. On a machine with two or more cores
the server is pinned to core 0 and SIPp to core 1, so the two do not steal each other's time.

A rate search steps SIPp's call rate (-r) up from a start value, each step a bounded number of
calls in a bounded time, and keeps the highest rate with zero failed calls at which the server
kept pace. Over UDP, overload is a cliff (timer A/E retransmissions pile onto a server
already behind), so the search climbs by a factor until a step is not clean, then bisects
between the last clean rate and that one until they are within 10 %; the best rate is then
run again to check it was not luck. Every loop here is bounded in count and in wall time.

Environment knobs (all optional): DESKPBX_BENCH_WHAT_IF=rcvbuf adds rows for the
PBX with a suggested change applied at start-up (see WHAT_IFS); DESKPBX_BENCH_KEEP=1 keeps the
scratch directory with the servers' logs; DESKPBX_BENCH_NATIVE=1 makes py-spy sample C frames.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "sipp"
SIPP = shutil.which("sipp")
# A clean step ends within 10 % + 0.5 s of the time its calls take to offer (the last call's
# own length, scheduling gaps on a shared machine); later means the server built a backlog.
KEEP_PACE = 1.1
KEEP_PACE_SLACK_S = 0.5
PRECISION = 1.1
"""A rate search stops once the highest clean rate is within 10 % of the lowest failing one."""
SIPP_SOCKET_BUFFER = 4 * 1024 * 1024  # bytes; SIPp's 64 KiB default drops datagrams in bursts


def password(user: str) -> str:
    return f"secret-{user}"


def users(count: int, first: int = 2000) -> list[str]:
    return [str(n) for n in range(first, first + count)]


def cpu_split() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, load generator cores): one core each when the machine has two or more."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return {cores[0]}, set(cores[1:])


def pin(pid: int, cores: set[int] | None) -> None:
    if cores is not None:
        try:
            os.sched_setaffinity(pid, cores)
        except OSError:
            pass  # a child that already ended, or a sandbox that refuses: run unpinned


@dataclass
class Child:
    """A server process that is stopped with SIGTERM, then SIGKILL, whatever happens."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    workdir: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def address_tuple(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def stop(self, grace: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    cores: set[int] | None = None

    def pids(self) -> list[int]:
        """The process and its direct children (Kamailio's workers), from /proc if there."""
        pids = [self.proc.pid]
        try:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit() and _stat(entry.name)[1] == self.proc.pid:
                    pids.append(int(entry.name))
        except OSError:
            pass
        return pids

    def pin_all(self) -> None:
        """Pin the workers too: one forked before the parent was pinned would run anywhere."""
        for pid in self.pids():
            pin(pid, self.cores)

    def cpu_seconds(self) -> float:
        """User+system CPU seconds of the process and its direct children; 0.0 without /proc."""
        return sum(_stat(str(pid))[0] for pid in self.pids())

    def tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _stat(pid: str) -> tuple[float, int]:
    """(CPU seconds, parent pid) of a process from /proc/PID/stat; (0, 0) if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0, 0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, int(fields[1])


def _options(port: int, call_id: str) -> bytes:
    return (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{call_id};rport\r\n"
        f"From: <sip:probe@127.0.0.1>;tag={call_id}\r\nTo: <sip:127.0.0.1:{port}>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def wait_sip_ready(child: Child, timeout: float = 20.0) -> None:
    """Wait until the server answers an OPTIONS (any status) on its UDP port."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        for attempt in range(int(timeout / 0.2) + 1):
            if child.proc.poll() is not None:
                raise RuntimeError(f"{child.name} exited ({child.proc.returncode}): {child.tail()}")
            if time.monotonic() > deadline:
                break
            sock.sendto(_options(child.port, f"probe{attempt}x{os.getpid()}"), child.address_tuple)
            try:
                if sock.recv(65535).startswith(b"SIP/2.0 "):
                    return
            except TimeoutError:
                continue
    raise RuntimeError(f"{child.name} did not answer OPTIONS in {timeout:.0f} s: {child.tail()}")


def spawn(name: str, args: list[str], workdir: Path, port: int, cores: set[int] | None) -> Child:
    log = workdir / f"{name}.log"
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": path},
        )  # fmt: skip
    pin(proc.pid, cores)
    return Child(name, proc, port, log, workdir, cores)


@contextmanager
def running(child_factory: Callable[[], Child]) -> Iterator[Child]:
    child = child_factory()
    try:
        wait_sip_ready(child)
        child.pin_all()
        yield child
    finally:
        child.stop()


# -- DeskPBX -----------------------------------------------------------------------------------


def pbx_command(
    data_dir: Path, port: int, rtp_ports: str, what_if: tuple[str, ...] = ()
) -> list[str]:
    """`python -m pbx.cli serve ...`; with `what_if` tweaks, the same PBX started through this
    module's what-if runner (see WHAT_IFS)."""
    runner = [sys.executable, "-m", "pbx.cli"]
    if what_if:
        runner = [sys.executable, "-m", "tests.bench.sip_load", ",".join(what_if)]
    return [
        *runner, "--data-dir", str(data_dir), "serve",
        "--sip", f"127.0.0.1:{port}", "--rtp-ports", rtp_ports,
        "--auth-algorithms", "MD5", "--qualify-interval", "0", "--http", "off",
    ]  # fmt: skip


def start_pbx(
    workdir: Path,
    extensions: list[str],
    *,
    rtp_ports: str = "30000-31999",
    what_if: tuple[str, ...] = (),
    cores: set[int] | None = None,
) -> Child:
    """DeskPBX serving `extensions` (password secret-NNNN) on a free UDP port of 127.0.0.1."""
    data_dir = pbx_data(workdir, extensions)
    port = free_port()
    args = pbx_command(data_dir, port, rtp_ports, what_if)
    return spawn("deskpbx", args, workdir, port, cores)


def pbx_data(workdir: Path, extensions: list[str]) -> Path:
    """The PBX's data dir under `workdir`, holding `extensions` (password secret-NNNN)."""
    from pbx.store import Store  # the benchmark's setup writes rows the way `deskpbx ext add` does

    data_dir = workdir / "pbx-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with Store.in_dir(data_dir) as store:
        for number in extensions:
            if store.find_extension(number) is None:
                store.add_extension(number, password(number), f"Bench {number}")
    return data_dir


# -- what-if runs: the shipped PBX with one change applied at start-up, to put a number on a
# suggested change before anyone makes it. Never used for the headline figures.

WHAT_IF_RCVBUF = 4 * 1024 * 1024


def _what_if_rcvbuf() -> None:
    """SO_RCVBUF of 4 MiB on the SIP UDP sockets (Linux caps it at net.core.rmem_max), so a
    burst that arrives while the loop is busy waits in the kernel instead of being dropped."""
    from pbx.net import udp

    original = udp.UdpListener.connection_made

    def connection_made(self: udp.UdpListener, transport: object) -> None:
        sock = transport.get_extra_info("socket")  # type: ignore[attr-defined]
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, WHAT_IF_RCVBUF)
        original(self, transport)  # type: ignore[arg-type]

    udp.UdpListener.connection_made = connection_made  # type: ignore[method-assign]


WHAT_IFS: dict[str, tuple[Callable[[], None], str]] = {
    "rcvbuf": (_what_if_rcvbuf, "4 MiB SO_RCVBUF on the SIP UDP sockets"),
}


def what_if_main(argv: list[str]) -> int:
    """`python -m tests.bench.sip_load TWEAK[,TWEAK] <deskpbx arguments>`."""
    for name in filter(None, argv[0].split(",")):
        WHAT_IFS[name][0]()
    from pbx.cli import main

    return main(argv[1:])


# -- SIPp --------------------------------------------------------------------------------------


def auth_csv(directory: Path, rows: list[list[str]]) -> Path:
    """A SIPp injection file; the `[authentication ...]` keyword is a whole column because SIPp
    does not expand fields inside it."""
    path = directory / f"inject-{time.monotonic_ns()}.csv"
    path.write_text("SEQUENTIAL\n" + "\n".join(";".join(row) for row in rows) + "\n")
    return path


def auth_field(user: str) -> str:
    return f"[authentication username={user} password={password(user)}]"


@dataclass(frozen=True)
class Step:
    """One SIPp run at one offered rate."""

    rate: float
    calls: int
    successful: int
    failed: int
    retransmissions: int
    elapsed: float  # seconds from the first call to SIPp's exit
    returncode: int
    server_cpu: float = 0.0  # CPU seconds the server used during the step
    client_cpu: float = 0.0  # CPU seconds SIPp (the load generator) used
    log: str = field(default="", repr=False)

    @property
    def clean(self) -> bool:
        """Every call succeeded and the server kept pace (no backlog after the last call).

        Retransmissions alone do not make a step unclean (the machine is shared, a scheduling
        gap of 500 ms costs one); they are reported next to the figure instead.
        """
        return (
            self.returncode == 0
            and self.failed == 0
            and self.successful == self.calls
            and self.elapsed <= KEEP_PACE * self.calls / self.rate + KEEP_PACE_SLACK_S
        )

    @property
    def cpu_per_call_ms(self) -> float:
        return 1000 * self.server_cpu / self.successful if self.successful else 0.0

    @property
    def client_cpu_per_call_ms(self) -> float:
        return 1000 * self.client_cpu / self.successful if self.successful else 0.0

    @property
    def achieved(self) -> float:
        """Completed calls per second over the whole run (at most the offered rate)."""
        return self.successful / self.elapsed if self.elapsed > 0 else 0.0


def _sipp_elapsed(text: str) -> float:
    """SIPp's ElapsedTime(C) as seconds; it is written HH:MM:SS:microseconds."""
    parts = text.strip().split(":")
    try:
        h, m, s = (int(p) for p in parts[:3])
        micro = int(parts[3]) if len(parts) > 3 else 0
    except ValueError:
        return 0.0
    return h * 3600 + m * 60 + s + micro / 1e6


def _children_cpu() -> float:
    """CPU seconds of the reaped children: around one SIPp run, that run's own CPU."""
    try:
        import resource  # not on Windows: the figure is then left out
    except ImportError:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sipp_args(
    scenario: Path, local_port: int, *, remote: str | None = None, inject: Path | None = None,
    rate: float | None = None, calls: int | None = None, timeout_s: float = 30.0,
    extra: tuple[str, ...] = (), stats: Path | None = None,
) -> list[str]:  # fmt: skip
    if SIPP is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester)")
    args = [
        SIPP, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(local_port), "-nostdin",
        "-timeout", f"{int(timeout_s)}s", "-timeout_error", "-max_recv_loops", "10000",
        "-buff_size", str(SIPP_SOCKET_BUFFER),
    ]  # fmt: skip
    if inject is not None:
        args += ["-inf", str(inject)]
    if rate is not None:
        args += ["-r", f"{rate:.0f}", "-rp", "1000", "-l", f"{max(100, int(rate * 10))}"]
    if calls is not None:
        args += ["-m", str(calls)]
    if stats is not None:
        args += ["-trace_stat", "-stf", str(stats), "-fd", "1"]
    args += list(extra)
    if remote is not None:
        args.append(remote)
    return args


def run_sipp(
    scenario: Path,
    remote: str,
    *,
    rate: float,
    calls: int,
    inject: Path,
    workdir: Path,
    cores: set[int] | None = None,
    extra: tuple[str, ...] = (),
    timeout_s: float = 30.0,
    server: Child | None = None,
) -> Step:
    """Offer `calls` calls at `rate` calls/s and read the result from SIPp's statistics file."""
    stats = workdir / f"stat-{time.monotonic_ns()}.csv"
    args = sipp_args(
        scenario, free_port(), remote=remote, inject=inject, rate=rate, calls=calls,
        timeout_s=timeout_s, extra=extra, stats=stats,
    )  # fmt: skip
    cpu_before = server.cpu_seconds() if server is not None else 0.0
    children_before = _children_cpu()
    started = time.monotonic()
    proc = subprocess.Popen(
        args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    pin(proc.pid, cores)
    try:
        output, _ = proc.communicate(timeout=timeout_s + calls / rate + 15)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    finally:
        if proc.poll() is None:  # interrupted: leave no load generator behind
            proc.kill()
            proc.wait(5)
    wall = time.monotonic() - started
    cpu = server.cpu_seconds() - cpu_before if server is not None else 0.0
    client_cpu = _children_cpu() - children_before  # SIPp is the only child reaped meanwhile
    last: dict[str, str] = {}
    if stats.exists():
        rows = list(csv.DictReader(stats.open(), delimiter=";"))
        last = rows[-1] if rows else {}
    elapsed = _sipp_elapsed(last.get("ElapsedTime(C)", "")) or wall
    return Step(
        rate=rate,
        calls=calls,
        successful=int(last.get("SuccessfulCall(C)", 0) or 0),
        failed=int(last.get("FailedCall(C)", 0) or 0),
        retransmissions=int(last.get("Retransmissions(C)", 0) or 0),
        elapsed=elapsed,
        returncode=proc.returncode,
        server_cpu=cpu,
        client_cpu=client_cpu,
        log=output.decode(errors="replace")[-3000:],
    )


@dataclass
class Search:
    """The steps of one rate search, and the highest clean one."""

    steps: list[Step] = field(default_factory=list)
    best: Step | None = None
    confirmations: list[Step] = field(default_factory=list)
    best_runs: list[Step] = field(default_factory=list)  # the best rate's step and its reruns

    @property
    def best_retransmissions(self) -> int:
        return sum(s.retransmissions for s in self.best_runs)

    def summary(self) -> str:
        marks = ", ".join(f"{s.rate:.0f}{'' if s.clean else '✗'}" for s in self.steps)
        return f"steps (calls/s offered, ✗ = not clean): {marks}"


def search_rate(
    step: Callable[[float], Step],
    *,
    start: float,
    factor: float,
    max_steps: int,
    budget_s: float,
    confirm: int = 1,
    precision: float = PRECISION,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Search:
    """Step the offered rate up by `factor` until a step is not clean (or down by `factor`
    until one is, when the start rate already is not), then bisect (geometric midpoints)
    between the highest clean rate and the lowest rate that was not, until they are within
    `precision` of each other.

    Why bisect: with x1.5 steps alone, two servers whose real ceilings differ by 40 % can read
    the same figure (both stop at the same step), and a ratio of such figures hides progress
    or loss. Each halving costs one step, so x1.5 narrows to within 10 % in three.

    At most `max_steps` steps plus `confirm` reruns, and no new step after `budget_s`. The best
    rate is rerun `confirm` times; if a rerun is not clean, the best falls back to the next
    lower clean step (the figure must hold more than once).
    """
    result = Search()
    deadline = time.monotonic() + budget_s
    rate = start
    clean_top: float | None = None  # highest rate with a clean step
    failed_low: float | None = None  # lowest rate above it whose step was not clean
    for _ in range(max_steps):
        if time.monotonic() > deadline:
            break
        outcome = step(rate)
        result.steps.append(outcome)
        log(f"   {rate:8.0f}/s offered: {outcome.successful}/{outcome.calls} ok, "
            f"{outcome.failed} failed, {outcome.retransmissions} retrans, "
            f"{outcome.achieved:8.0f}/s achieved, "
            f"server CPU {outcome.cpu_per_call_ms:.2f} ms/call, "
            f"SIPp {outcome.client_cpu_per_call_ms:.2f} ms/call")  # fmt: skip
        if outcome.clean:
            clean_top = rate if clean_top is None else max(clean_top, rate)
        else:
            failed_low = rate if failed_low is None else min(failed_low, rate)
        next_rate = _next_rate(clean_top, failed_low, factor, precision)
        if next_rate is None:
            break
        rate = next_rate
    clean = sorted((s for s in result.steps if s.clean), key=lambda s: s.rate, reverse=True)
    for candidate in clean:
        if time.monotonic() > deadline + budget_s / 2:
            break
        reruns = [step(candidate.rate) for _ in range(confirm)]
        result.confirmations.extend(reruns)
        for r in reruns:
            log(f"   {r.rate:8.0f}/s rerun:    {r.successful}/{r.calls} ok, {r.failed} failed, "
                f"{r.retransmissions} retrans, {r.achieved:8.0f}/s achieved")  # fmt: skip
        if all(r.clean for r in reruns):
            result.best = min([candidate, *reruns], key=lambda s: s.achieved)
            result.best_runs = [candidate, *reruns]
            break
    return result


def _next_rate(
    clean_top: float | None, failed_low: float | None, factor: float, precision: float
) -> float | None:
    """The next rate to offer, or None when the search has its answer."""
    if failed_low is None:
        assert clean_top is not None
        return clean_top * factor  # still climbing
    if clean_top is None:
        return failed_low / factor  # not even the start was clean: step down
    if failed_low <= clean_top * precision:
        return None
    return (clean_top * failed_low) ** 0.5


# -- profiling ----------------------------------------------------------------------------------

PY_SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


@contextmanager
def profiled(pid: int, seconds: float, out: Path) -> Iterator[Path | None]:
    """Sample `pid` with py-spy (if installed) for `seconds`; yields the raw stacks file.

    Blocking mode (py-spy pauses the process per sample) gives whole stacks; it slows the
    server a little, so profiling gets its own step, never a measured one.
    """
    if PY_SPY is None:
        yield None
        return
    args = [PY_SPY, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
            "--rate", "200", "--format", "raw", "-o", str(out)]  # fmt: skip
    if os.environ.get("DESKPBX_BENCH_NATIVE"):
        args.append("--native")  # C frames too (uvloop, sqlite3, sendmsg); slower sampling
    spy = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield out
    finally:
        try:
            spy.wait(seconds + 15)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)


_IDLE_LEAVES = (("threading.py", "wait"), ("selectors.py", "select"), ("queue.py", "get"))


def _idle(stack: str) -> bool:
    """A sample of a thread that sleeps (the store's flusher waiting for its next batch, an
    executor thread): py-spy in blocking mode cannot always tell it is idle, and counting it
    would make the waiting thread look like the server's hottest code."""
    leaf = stack.rpartition(";")[2]
    function = leaf.split(" (", 1)[0]
    source = leaf.rpartition("(")[2].split(":", 1)[0]
    return any(source.endswith(f) and function.endswith(n) for f, n in _IDLE_LEAVES)


def hot_spots(raw: Path | None, top: int = 8) -> list[tuple[str, float, float]]:
    """(function, self share, inclusive share) from py-spy raw stacks, by self time."""
    if raw is None or not raw.exists():
        return []
    own: dict[str, int] = {}
    total_in: dict[str, int] = {}
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or _idle(stack):
            continue
        n = int(count)
        samples += n
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0] + ")"
                  for frame in stack.split(";")]  # fmt: skip
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for name in set(frames):
            total_in[name] = total_in.get(name, 0) + n
    if samples == 0:
        return []
    ranked = sorted(own.items(), key=lambda item: item[1], reverse=True)[:top]
    return [(name, n / samples, total_in[name] / samples) for name, n in ranked]


def describe_hot_spots(spots: list[tuple[str, float, float]]) -> str:
    return "\n".join(f"   {own:6.1%} self {incl:6.1%} incl  {name}" for name, own, incl in spots)


# Where the server's time goes, by area: a sample counts for an area when any frame of its
# stack matches (inclusive time; areas overlap, e.g. digest is inside registrar).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("parse", ("parse_message (pbx/sip/message.py",)),
    ("request checks+typed headers", ("check_request (pbx/sip/checks.py",)),
    ("transaction layer", ("SipCore.receive (",)),
    ("registrar", ("Registrar.handle (",)),
    ("digest", ("DigestServer.verify (", "DigestServer.challenge (")),
    ("B2BUA", ("B2bua.",)),
    ("SDP", ("(pbx/sip/sdp.py",)),
    ("relay ports", ("(pbx/media/",)),
    ("store+sqlite", ("Store.",)),
    ("logging", ("(logging/",)),
    ("send", ("TransportManager.send (",)),
)


def area_shares(raw: Path | None) -> list[tuple[str, float]]:
    """(area, share of samples) for AREAS, largest first, from py-spy raw stacks."""
    if raw is None or not raw.exists():
        return []
    hits = dict.fromkeys((name for name, _ in AREAS), 0)
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or _idle(stack):
            continue
        samples += int(count)
        for name, needles in AREAS:
            if any(needle in stack for needle in needles):
                hits[name] += int(count)
    if samples == 0:
        return []
    return sorted(((n, c / samples) for n, c in hits.items() if c), key=lambda a: -a[1])


def describe_areas(shares: list[tuple[str, float]]) -> str:
    return "; ".join(f"{name} {share:.0%}" for name, share in shares if share >= 0.01)


def cpu_note(step: Step, unit: str) -> str:
    """Server CPU per call at a step and the one-core ceiling it implies: a figure that holds
    better than the rate on a shared machine, where other processes take turns on the core."""
    if step.cpu_per_call_ms <= 0:
        return ""
    note = (
        f"server CPU {step.cpu_per_call_ms:.2f} ms/{unit} "
        f"(one-core ceiling ~{1000 / step.cpu_per_call_ms:,.0f}/s)"
    )
    if step.client_cpu > 0:
        both = step.cpu_per_call_ms + step.client_cpu_per_call_ms
        note += (
            f", SIPp {step.client_cpu_per_call_ms:.2f} ms/{unit}: together "
            f"{both:.2f} ms/{unit}, a two-core ceiling of ~{2000 / both:,.0f}/s"
        )
    return note


def what_ifs_requested() -> tuple[str, ...]:
    """Tweaks named in DESKPBX_BENCH_WHAT_IF (comma-separated WHAT_IFS keys); empty by default."""
    names = tuple(filter(None, os.environ.get("DESKPBX_BENCH_WHAT_IF", "").split(",")))
    unknown = [name for name in names if name not in WHAT_IFS]
    if unknown:
        raise ValueError(f"unknown what-if {unknown}: use {', '.join(WHAT_IFS)}")
    return names


@contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    """A scratch directory for data dirs, configs, CSVs and logs; removed afterwards unless
    DESKPBX_BENCH_KEEP is set (then its path is printed, to read the servers' logs)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if os.environ.get("DESKPBX_BENCH_KEEP"):
            print(f"   kept {path}", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(what_if_main(sys.argv[1:]))
