"""Authenticated registrations per second: DeskPBX's registrar against Kamailio's, both driven by
SIPp on 127.0.0.1.

One "registration" is one SIPp call of tests/bench/sipp/register_auth.xml: REGISTER, 401 with
a digest challenge, REGISTER with credentials (MD5, qop=auth), 200 OK (RFC 3261 §10.2, §22.4;
RFC 2617), so it costs the server two REGISTER requests. Users rotate over 1,000 extensions from
a CSV, each binding's Contact is SIPp's own address, Expires 3600.

Each server runs as a child process pinned to one core, SIPp on the other. The offered rate
steps up until a step fails a call or falls behind (see sip_load.search_rate); the best clean
rate is run again before it is reported. Kamailio is the same kind of server (auth_db with
plaintext passwords in sqlite, usrloc in memory, children=2) and sets the yardstick: the goal
is >= 5,000 registrations/s and >= 0.5x Kamailio's rate in the same run.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.bench import register_cpu, register_split
from tests.bench import sip_load as load
from tests.bench.kamailio import kamailio_binary, start_kamailio
from tests.bench.rows import Row

COMMAND = ".venv/bin/python -m tests.bench register"
REGISTER_CPU_COMMAND = ".venv/bin/python -m tests.bench.register_cpu"
GOAL_PER_S = 5_000.0
GOAL_RATIO = 0.5
EXTENSIONS = 1_000
SCENARIO = load.SCENARIOS / "register_auth.xml"
SETTLE_S = 0.5


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stepper(
    child: load.Child, inject: Path, workdir: Path, seconds: float, cores: set[int] | None
) -> Callable[[float], load.Step]:
    def step(rate: float) -> load.Step:
        time.sleep(SETTLE_S)  # let the previous step's stragglers drain
        return load.run_sipp(
            SCENARIO, child.address, rate=rate, calls=max(1, int(rate * seconds)),
            inject=inject, workdir=workdir, cores=cores, timeout_s=10, server=child,
        )  # fmt: skip

    return step


def _measure(
    name: str,
    factory: Callable[[], load.Child],
    inject: Path,
    workdir: Path,
    *,
    quick: bool,
    start: float,
    profile: bool,
) -> tuple[load.Search, str]:
    """Rate search against one server; returns it and a hot-spot summary (DeskPBX only)."""
    _, generator = load.cpu_split()
    seconds, steps, confirm, budget = (2.0, 7, 0, 30.0) if quick else (5.0, 12, 1, 100.0)
    _log(f"   {name}: {seconds:.0f} s per step, x1.5 from {start:.0f}/s")
    spots = ""
    with load.running(factory) as child:
        step = _stepper(child, inject, workdir, seconds, generator)
        search = load.search_rate(
            step, start=start, factor=1.5, max_steps=steps, budget_s=budget, confirm=confirm
        )
        if profile and search.best is not None:
            rate = search.best.rate * 0.8
            with load.profiled(child.proc.pid, seconds, workdir / f"{name}.pyspy") as raw:
                step(rate)
            found = load.hot_spots(raw)
            if found:
                _log(f"   {name} hot spots at {rate:.0f}/s (py-spy, by self time):")
                _log(load.describe_hot_spots(found))
                spots = load.describe_areas(load.area_shares(raw))
    return search, spots


def _figure(search: load.Search) -> tuple[float, str]:
    best = search.best
    if best is None:
        return 0.0, "no clean step; " + search.summary()
    retrans = search.best_retransmissions
    cpu = load.cpu_note(best, "registration")
    return best.achieved, (
        f"= {2 * best.achieved:,.0f} REGISTER requests/s; {len(search.best_runs)} runs of "
        f"{best.calls} calls at {best.rate:.0f}/s offered, 0 failed, {retrans} retransmissions; "
        f"{cpu + '; ' if cpu else ''}{search.summary()}"
    )


def _pbx_rows(
    workdir: Path, extensions: list[str], inject: Path, quick: bool, cores: set[int] | None
) -> tuple[float, load.Search, list[Row]]:
    """The headline DeskPBX row, plus one row per what-if tweak asked for (none by default)."""
    machine = f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at start"
    one = "1 registration = REGISTER, 401, REGISTER+auth, 200 (MD5 qop=auth, 1,000 users)"
    search, spots = _measure(
        "deskpbx", lambda: load.start_pbx(workdir, extensions, cores=cores),
        inject, workdir, quick=quick, start=150.0, profile=True,
    )  # fmt: skip
    rate, note = _figure(search)
    hot = f"; where PBX time goes (py-spy, inclusive): {spots}" if spots else ""
    rows = [
        Row("register: DeskPBX authenticated registrations", rate, "reg/s",
            f">= {GOAL_PER_S:,.0f} reg/s", rate >= GOAL_PER_S,
            f"{one} {note}; {machine}{hot}", COMMAND),
    ]  # fmt: skip
    for tweak in load.what_ifs_requested():
        tweak_search, _ = _measure(
            f"deskpbx-{tweak}",
            lambda tweak=tweak: load.start_pbx(  # type: ignore[misc]
                workdir / tweak, extensions, cores=cores, what_if=(tweak,)
            ),
            inject, workdir, quick=quick, start=150.0, profile=False,
        )  # fmt: skip
        tweak_rate, tweak_note = _figure(tweak_search)
        rows.append(Row(f"register: what-if DeskPBX + {tweak}", tweak_rate, "reg/s", "", None,
                        f"not the shipped PBX: {load.WHAT_IFS[tweak][1]}; "
                        f"{tweak_note}", f"DESKPBX_BENCH_WHAT_IF={tweak} {COMMAND}"))  # fmt: skip
    return rate, search, rows


def run(quick: bool) -> list[Row]:
    if load.SIPP is None:
        return [Row("register: DeskPBX", 0, "reg/s", note="sipp not installed (sip-tester)",
                    command=COMMAND)]  # fmt: skip
    with load.workspace("bench-register-") as workdir:
        return _run(workdir, quick)


def _run(workdir: Path, quick: bool) -> list[Row]:
    server_cores, _ = load.cpu_split()
    extensions = load.users(EXTENSIONS)
    inject = load.auth_csv(workdir, [[user, load.auth_field(user)] for user in extensions])
    pbx_rate, pbx_search, rows = _pbx_rows(workdir, extensions, inject, quick, server_cores)

    binary, kam_setup = kamailio_binary()
    kam_rate, kam_note = 0.0, kam_setup or "Kamailio unavailable"
    kam_search = load.Search()
    if binary is not None:
        kam_search, _ = _measure(
            "kamailio", lambda: start_kamailio(binary, workdir, extensions, server_cores),
            inject, workdir, quick=quick, start=1000.0, profile=False,
        )  # fmt: skip
        kam_rate, kam_note = _figure(kam_search)
        kam_note = f"{kam_setup + '; ' if kam_setup else ''}children=2, auth_db sqlite; {kam_note}"
    ratio = pbx_rate / kam_rate if kam_rate else 0.0
    return [*_summary_rows(rows, pbx_search, kam_rate, kam_note, ratio, kam_search),
            _in_process_row(quick), *_split_row(workdir, extensions, inject, pbx_search, quick),
            _commit_row(workdir)]  # fmt: skip


def _split_row(
    workdir: Path, extensions: list[str], inject: Path, search: load.Search, quick: bool
) -> list[Row]:
    """Server CPU per registration split into the lane's Python work, the sends and the rest,
    in a real run at 80 % of the best clean rate (tests/bench/register_split.py)."""
    if search.best is None:
        return []
    rate = round(search.best.rate * 0.8)
    split = register_split.measure(workdir / "split", extensions, inject, SCENARIO, rate,
                                   2.0 if quick else 6.0, load.cpu_split())  # fmt: skip
    if split is None:
        return [Row("register: server CPU per registration by part", 0.0, "ms/reg",
                    note=f"the run at {rate}/s was not clean", command=COMMAND)]  # fmt: skip
    return [Row("register: server CPU per registration by part", split.process_ms, "ms/reg",
                "", None,
                f"a real run of {split.registrations:,} registrations at {rate}/s, the lane and "
                f"the UDP send wrapped with thread CPU clocks: REGISTER lane (parse, digest, "
                f"registrar, answer) {split.lane_ms:.3f} ms; sendto {split.send_ms:.3f} ms "
                f"(2 per registration); the rest (receiving, event loop, store flusher) "
                f"{split.rest_ms:.3f} ms; compare the in-process row, the same lane in a tight "
                f"loop with no system calls between", COMMAND)]  # fmt: skip


def _in_process_row(quick: bool) -> Row:
    """Server CPU per registration with no sockets and no SIPp (tests/bench/register_cpu.py):
    the figure to compare before/after a change on a busy machine."""
    count = 1_000 if quick else 3_000
    figure = register_cpu.measure(count)
    ceiling = 1e6 / figure.cpu_us if figure.cpu_us else 0.0
    return Row("register: registration CPU, in-process", figure.cpu_us, "us/reg",
               "<= 350 us/reg", figure.cpu_us <= 350.0,
               f"best of 3 x {figure.registrations:,} registrations fed to UdpListener."
               f"datagram_received (REGISTER, 401, REGISTER+auth, 200); single-thread ceiling "
               f"{ceiling:,.0f} reg/s", f"{REGISTER_CPU_COMMAND} {count}")  # fmt: skip


def _commit_row(workdir: Path) -> Row:
    """What one store commit costs the PBX's event loop on this disk (see _commit_wall_ms)."""
    full, normal = (_commit_wall_ms(workdir, mode) for mode in ("FULL", "NORMAL"))
    mode = _store_synchronous(workdir)
    value = {"FULL": full, "NORMAL": normal}.get(mode, full)
    return Row("register: sqlite WAL commit on the data dir's disk", value, "ms", "", None,
               f"the store uses synchronous={mode}; FULL {full:.2f} ms vs NORMAL {normal:.2f} ms "
               "wall per upsert+COMMIT; the PBX answers REGISTER from memory and writes "
               "bindings in batches (one commit per 50 ms or 256 changes) on its flusher "
               "thread", COMMAND)  # fmt: skip


def _cost_ratio(pbx: load.Search, kamailio: load.Search) -> str:
    """Kamailio's server CPU per registration over DeskPBX's: the ratio the rates would have on
    an idle machine where each got a whole core."""
    if pbx.best is None or kamailio.best is None or not pbx.best.cpu_per_call_ms:
        return ""
    ratio = kamailio.best.cpu_per_call_ms / pbx.best.cpu_per_call_ms
    return f"; CPU-cost ratio {ratio:.2f}x (Kamailio CPU per registration / DeskPBX's)"


def _summary_rows(
    rows: list[Row], pbx_search: load.Search, kam_rate: float, kam_note: str, ratio: float,
    kam_search: load.Search,
) -> list[Row]:  # fmt: skip
    return [
        rows[0],
        Row("register: Kamailio 5.6 authenticated registrations", kam_rate, "reg/s", "peer", None,
            kam_note, COMMAND),
        Row("register: DeskPBX / Kamailio", ratio, "x", f">= {GOAL_RATIO}x",
            ratio >= GOAL_RATIO if kam_rate else None,
            "same run, same SIPp scenario and users" + _cost_ratio(pbx_search, kam_search),
            COMMAND),
        *rows[1:],
    ]  # fmt: skip


def _commit_wall_ms(
    directory: Path, synchronous: str, count: int = 200, budget_s: float = 2.0
) -> float:
    """Wall milliseconds of one small upsert + COMMIT in a WAL database in `directory`.

    The PBX's store commits once per call (the CDR) on the event loop's thread and once per
    batch of bindings (pbx.store.location) on its flusher thread, so with synchronous=FULL a
    CDR's fsync stalls the whole event loop. That wait is not CPU time: this puts a number on
    it for the disk at hand.
    """
    path = directory / f"commit-{synchronous.lower()}.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("CREATE TABLE IF NOT EXISTS b (k TEXT PRIMARY KEY, v REAL)")
        started, done = time.perf_counter(), 0
        while done < count and time.perf_counter() - started < budget_s:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT OR REPLACE INTO b VALUES (?, ?)", (str(done % 50), done))
            conn.execute("COMMIT")
            done += 1
        return 1000 * (time.perf_counter() - started) / max(done, 1)
    finally:
        conn.close()


def _store_synchronous(directory: Path) -> str:
    """The PRAGMA synchronous the PBX's store connections use (FULL, NORMAL, ...)."""
    from pbx.store import schema

    conn = schema.connect(directory / "probe.sqlite")
    try:
        level = conn.execute("PRAGMA synchronous").fetchone()[0]
    finally:
        conn.close()
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))
