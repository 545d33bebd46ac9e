"""Store throughput: registrar writes, location lookups, CDR writes and CDR queries.

A re-registration storm (every phone re-registering after a PBX restart) is one
binding upsert per REGISTER, each its own committed transaction; a call needs
one location lookup and, when it ends, one CDR insert. Figures are for a
database in a temporary directory on the local disk. Loops are bounded in
count and in time.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pbx.store import Binding, Cdr, Disposition, Store
from tests.bench.rows import Row

COMMAND = ".venv/bin/python -m tests.bench store"
EXTENSIONS = 500
T0 = 1_800_000_000.0


def _rate(work: Callable[[int], object], count: int, budget_s: float) -> float:
    """Operations per second over at most `count` calls or `budget_s` seconds."""
    started = time.perf_counter()
    done = 0
    while done < count and time.perf_counter() - started < budget_s:
        work(done)
        done += 1
    return done / (time.perf_counter() - started)


def _binding(i: int) -> Binding:
    number = str(1000 + i % EXTENSIONS)
    return Binding(number, f"sip:{number}@10.0.{i % 250}.{i % 200}:5060", "198.51.100.4",
                   40000 + i % 20000, "udp", T0 + 3600 + i, call_id=f"c{i}", cseq=i)  # fmt: skip


def _cdr(i: int) -> Cdr:
    return Cdr.from_times(
        call_id=f"call-{i}", caller=str(1000 + i % EXTENSIONS), callee="0612345678",
        start=T0 + i, answer=T0 + i + 3, end=T0 + i + 60, disposition=Disposition.ANSWERED,
        sip_code=200, sip_reason="OK", x_headers={"X-Account": str(i)},
    )  # fmt: skip


def run(quick: bool) -> list[Row]:
    count, budget = (300, 0.5) if quick else (5_000, 3.0)
    with tempfile.TemporaryDirectory() as tmp, Store.in_dir(Path(tmp)) as store:
        for i in range(EXTENSIONS):
            store.add_extension(str(1000 + i), "bench-password", now=T0)
        upsert = _rate(lambda i: store.upsert_binding(_binding(i)), count, budget)
        lookup = _rate(
            lambda i: store.active_bindings(T0, str(1000 + i % EXTENSIONS)), count * 4, budget
        )
        insert = _rate(lambda i: store.add_cdr(_cdr(i)), count, budget)
        stored_cdrs = len(store.query_cdrs(limit=10_000))
        query = _rate(lambda i: store.query_cdrs(limit=50), count // 5 or 1, budget)
        filtered = _rate(
            lambda i: store.query_cdrs(limit=50, caller=str(1000 + i % EXTENSIONS)),
            count // 5 or 1,
            budget,
        )
    note = f"{EXTENSIONS} extensions, WAL, one commit per op"
    return [
        Row("store binding upsert (REGISTER)", upsert, "op/s", ">= 500 op/s", upsert >= 500,
            note, COMMAND),
        Row("store active bindings of one extension", lookup, "op/s", ">= 5,000 op/s",
            lookup >= 5_000, note, COMMAND),
        Row("store CDR insert", insert, "op/s", ">= 200 op/s", insert >= 200, note, COMMAND),
        Row("store newest 50 CDRs", query, "op/s", ">= 100 op/s", query >= 100,
            f"{stored_cdrs} CDRs stored", COMMAND),
        Row("store newest 50 CDRs of one caller", filtered, "op/s", ">= 100 op/s",
            filtered >= 100, f"{stored_cdrs} CDRs stored", COMMAND),
    ]  # fmt: skip
