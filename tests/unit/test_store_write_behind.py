"""Registrations are answered from memory and written to the file in batches.

`Store.apply_registration` keeps bindings in memory and owes the rows to the file
(pbx.store.location): they are written in one transaction per batch, before any other
statement of the same Store, and on close, so a restart still finds them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pbx.store import Binding, Store
from pbx.store.location import WRITE_BEHIND_MAX

PASSWORD = "correct-horse-battery"
T0 = 1_800_000_000.0
HOUR = 3600.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    # A long delay: the flusher thread never writes during a test, only the rules below do.
    with Store.in_dir(tmp_path, write_behind=3600.0) as opened:
        for number in ("201", "202", "203"):
            opened.add_extension(number, PASSWORD)
        yield opened


@pytest.fixture
def other(tmp_path: Path, store: Store) -> Iterator[Store]:
    """Another connection to the same file (the CLI, the GUI's own Store)."""
    with Store.in_dir(tmp_path) as opened:
        yield opened


def _binding(ext: str = "201", cseq: int = 2, expires_at: float = T0 + HOUR, **kw) -> Binding:
    return Binding(
        extension=ext, contact=f"sip:{ext}@192.168.1.20:5060", source_host="203.0.113.7",
        source_port=41234, transport="UDP", expires_at=expires_at, call_id="c1@phone",
        cseq=cseq, user_agent="Yealink", **kw,
    )  # fmt: skip


def _register(store: Store, binding: Binding) -> list[Binding] | None:
    return store.apply_registration(
        binding.extension, [(binding.contact, binding)], binding.call_id, binding.cseq, T0
    )


def _commits(store: Store) -> list[str]:
    seen: list[str] = []
    store._conn.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen


def test_another_connection_sees_a_registration_once_the_batch_is_written(
    store: Store, other: Store
) -> None:
    assert _register(store, _binding()) == [_binding()]
    assert other.active_bindings(T0) == []  # still owed to the file
    store.flush()
    assert other.active_bindings(T0) == [_binding()]


def test_reads_through_the_same_store_see_pending_changes(store: Store) -> None:
    _register(store, _binding("201"))
    _register(store, _binding("202"))
    assert store.active_binding_counts(T0) == {"201": 1, "202": 1}
    _register(store, _binding("203"))
    assert store.get_binding("203", "sip:203@192.168.1.20:5060") == _binding("203")
    assert [b.extension for b in store.active_bindings(T0)] == ["201", "202", "203"]


def test_closing_writes_what_is_pending_and_a_restart_finds_it(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path, write_behind=3600.0) as first:
        first.add_extension("201", PASSWORD)
        _register(first, _binding(cseq=2))
        _register(first, _binding(cseq=3, expires_at=T0 + 2 * HOUR))  # a refresh
    with Store.in_dir(tmp_path) as second:
        assert second.active_bindings(T0) == [_binding(cseq=3, expires_at=T0 + 2 * HOUR)]
        # The refreshed expiry was kept: the binding outlives the first one's hour.
        assert second.active_bindings(T0 + HOUR + 1) != []
        # §10.3 step 7 still holds after the restart: the stored CSeq is the last one.
        assert _register(second, _binding(cseq=3)) is None


def test_many_registrations_are_one_transaction(store: Store) -> None:
    for number in ("201", "202", "203"):
        _register(store, _binding(number))  # loads each extension's bindings once
    commits = _commits(store)
    for cseq in range(3, 3 + 40):
        for number in ("201", "202", "203"):
            _register(store, _binding(number, cseq=cseq))
    assert commits == []
    store.flush()
    assert commits == ["COMMIT"]
    assert store.get_binding("202", "sip:202@192.168.1.20:5060") == _binding("202", cseq=42)


def test_a_full_batch_is_written_without_waiting(store: Store, other: Store) -> None:
    for cseq in range(2, 2 + WRITE_BEHIND_MAX):  # refreshes of one binding coalesce...
        _register(store, _binding(cseq=cseq))
    assert other.active_bindings(T0) == []
    contacts = [replace(_binding(cseq=2), contact=f"sip:201@10.0.0.{i}") for i in range(
        WRITE_BEHIND_MAX)]  # fmt: skip
    commits = _commits(store)
    for binding in contacts:  # ...distinct bindings fill the batch
        _register(store, binding)
    assert commits == ["COMMIT"]
    assert len(other.active_bindings(T0)) >= WRITE_BEHIND_MAX


def test_a_binding_of_an_extension_removed_elsewhere_is_dropped_not_fatal(
    store: Store, other: Store
) -> None:
    _register(store, _binding("201"))
    _register(store, _binding("202"))
    other.remove_extension("201")
    store.flush()
    assert [b.extension for b in other.active_bindings(T0)] == ["202"]
    assert [b.extension for b in store.active_bindings(T0)] == ["202"]


def test_an_extension_removed_elsewhere_forgets_its_bindings_in_memory(
    store: Store, other: Store
) -> None:
    _register(store, _binding("201"))
    store.flush()
    other.remove_extension("201")
    assert store.find_extension("201") is None  # the file changed: caches start over
    assert store.apply_registration("201", [("sip:201@x", None)], "c9", 1, T0) == []


def test_removal_and_expiry_zero_are_batched_too(store: Store, other: Store) -> None:
    _register(store, _binding())
    store.flush()
    active = store.apply_registration(
        "201", [("sip:201@192.168.1.20:5060", None)], "c1@phone", 3, T0
    )
    assert active == []
    assert len(other.active_bindings(T0)) == 1
    store.flush()
    assert other.active_bindings(T0) == []


def test_write_through_when_write_behind_is_zero(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path, write_behind=0) as store, Store.in_dir(tmp_path) as other:
        store.add_extension("201", PASSWORD)
        _register(store, _binding())
        assert other.active_bindings(T0) == [_binding()]


def test_integer_q_and_expiry_come_back_as_the_file_gives_them(store: Store) -> None:
    odd = replace(_binding(), q=1, expires_at=int(T0 + HOUR))  # type: ignore[arg-type]
    [answered] = _register(store, odd) or []
    store.flush()
    stored = store.get_binding(odd.extension, odd.contact)
    assert answered == stored
    assert type(answered.q) is float and type(answered.expires_at) is float
