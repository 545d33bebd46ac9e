"""The store under concurrent use: one Store shared by threads, two Stores on one file.

`deskpbx serve` writes bindings and CDRs while the GUI or a `deskpbx ext`
command writes extensions; WAL plus busy_timeout must serialise them without
"database is locked" errors. Loops are bounded in count.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pbx.store import Binding, Cdr, Disposition, Store

THREADS = 4
PER_THREAD = 40
T0 = 1_800_000_000.0


def _cdr(worker: int, n: int) -> Cdr:
    return Cdr.from_times(
        call_id=f"w{worker}-{n}", caller=f"2{worker:02d}", callee="300",
        start=T0 + n, answer=None, end=T0 + n + 1, disposition=Disposition.FAILED,
    )  # fmt: skip


def _run_all(targets: list[threading.Thread]) -> None:
    for thread in targets:
        thread.start()
    for thread in targets:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a writer hung"


def test_threads_sharing_one_store(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with Store.in_dir(tmp_path) as store:
        store.add_extension("300", "secret123")

        def work(worker: int) -> None:
            try:
                for n in range(PER_THREAD):
                    store.add_cdr(_cdr(worker, n))
                    store.upsert_binding(
                        Binding("300", f"sip:w{worker}@h", "127.0.0.1", 5060, "udp", T0 + n)
                    )
                    store.active_bindings(T0)
            except BaseException as exc:
                errors.append(exc)

        _run_all([threading.Thread(target=work, args=(w,)) for w in range(THREADS)])
        assert errors == []
        assert len(store.query_cdrs(limit=1000)) == THREADS * PER_THREAD
        assert store.active_binding_counts(T0) == {"300": THREADS}


def test_two_connections_writing_at_once(tmp_path: Path) -> None:
    Store.in_dir(tmp_path).close()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            with Store.in_dir(tmp_path) as own:
                for n in range(PER_THREAD):
                    own.add_cdr(_cdr(worker, n))
                own.add_extension(f"4{worker}", "secret123")
        except BaseException as exc:
            errors.append(exc)

    _run_all([threading.Thread(target=work, args=(w,)) for w in range(THREADS)])
    assert errors == []
    with Store.in_dir(tmp_path) as store:
        assert len(store.query_cdrs(limit=1000)) == THREADS * PER_THREAD
        assert [e.number for e in store.list_extensions()] == ["40", "41", "42", "43"]
