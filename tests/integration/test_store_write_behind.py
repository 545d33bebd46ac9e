"""The store's flusher thread writes a registration within its write-behind delay, with no
further call into the Store (a PBX that goes quiet still gets its bindings into the file)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pbx.store import Binding, Store
from pbx.store import store as store_module

T0 = 1_800_000_000.0


def _binding(cseq: int) -> Binding:
    return Binding(
        extension="201", contact="sip:201@192.168.1.20:5060", source_host="203.0.113.7",
        source_port=41234, transport="UDP", expires_at=T0 + 3600, call_id="c1", cseq=cseq,
    )  # fmt: skip


def test_flusher_thread_writes_pending_bindings_by_itself(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path, write_behind=0.02) as store, Store.in_dir(tmp_path) as other:
        store.add_extension("201", "correct-horse-battery")
        for round_, cseq in enumerate((2, 3)):  # two batches: the thread goes on after one
            store.apply_registration("201", [(_binding(cseq).contact, _binding(cseq))], "c1",
                                     cseq, T0)  # fmt: skip
            deadline = time.monotonic() + 5.0
            while other.get_binding("201", _binding(cseq).contact) != _binding(cseq):
                assert time.monotonic() < deadline, f"batch {round_} never written"
                time.sleep(0.01)
        assert store._flusher is not None and store._flusher.is_alive()
    store._flusher.join(timeout=5.0)
    assert not store._flusher.is_alive()  # close() ends the thread


def test_an_idle_flusher_parks_and_wakes_for_the_next_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "IDLE_POLLS", 3)
    with Store.in_dir(tmp_path, write_behind=0.01) as store, Store.in_dir(tmp_path) as other:
        store.add_extension("201", "correct-horse-battery")
        for cseq in (2, 3):
            store.apply_registration("201", [(_binding(cseq).contact, _binding(cseq))], "c1",
                                     cseq, T0)  # fmt: skip
            deadline = time.monotonic() + 5.0
            while other.get_binding("201", _binding(cseq).contact) != _binding(cseq):
                assert time.monotonic() < deadline, f"CSeq {cseq} never written"
                time.sleep(0.01)
            while not store._parked:  # three empty polls later it parks
                assert time.monotonic() < deadline, "the flusher never parked"
                time.sleep(0.01)
