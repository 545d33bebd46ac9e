"""Routing's location lookup (Store.active_bindings for one extension) from memory.

An extension a REGISTER has touched is answered from `Location.known` without SQL; the
answer must be the one the file gives, and must follow changes made elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.store import Binding, Store

PASSWORD = "correct-horse-battery"
T0 = 1_800_000_000.0
HOUR = 3600.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.in_dir(tmp_path, write_behind=3600.0) as opened:
        for number in ("201", "202"):
            opened.add_extension(number, PASSWORD)
        yield opened


@pytest.fixture
def other(tmp_path: Path, store: Store) -> Iterator[Store]:
    with Store.in_dir(tmp_path) as opened:
        yield opened


def _binding(contact: str, q: float = 1.0, expires_at: float = T0 + HOUR, cseq: int = 2) -> Binding:
    return Binding(
        extension="201", contact=contact, source_host="203.0.113.7", source_port=41234,
        transport="UDP", expires_at=expires_at, q=q, call_id="c1@phone", cseq=cseq,
        user_agent="Yealink",
    )  # fmt: skip


def _register(store: Store, *bindings: Binding) -> None:
    changes = [(b.contact, b) for b in bindings]
    assert store.apply_registration("201", changes, "c1@phone", bindings[0].cseq, T0) is not None


def _sql_statements(store: Store) -> list[str]:
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    return seen


def test_memory_answer_equals_the_files(store: Store, other: Store) -> None:
    low = _binding("sip:201@10.0.0.1", q=0.5)
    high = _binding("sip:201@10.0.0.2", q=0.9)
    gone = _binding("sip:201@10.0.0.3", expires_at=T0 + 10)
    _register(store, low, high, gone)
    statements = _sql_statements(store)
    from_memory = store.active_bindings(T0 + 20, "201")
    assert statements == []  # no SQL on the call path
    assert [b.contact for b in from_memory] == ["sip:201@10.0.0.2", "sip:201@10.0.0.1"]
    store.flush()
    assert other.active_bindings(T0 + 20, "201") == from_memory


def test_a_change_by_another_connection_is_seen(store: Store, other: Store) -> None:
    _register(store, _binding("sip:201@10.0.0.1"))
    assert len(store.active_bindings(T0, "201")) == 1
    store.flush()
    assert other.remove_bindings("201") == 1
    assert store.active_bindings(T0, "201") == []


def test_an_untouched_extension_is_read_from_the_file(store: Store, other: Store) -> None:
    other.upsert_binding(_binding("sip:201@10.0.0.9"))
    [found] = store.active_bindings(T0, "201")
    assert found.contact == "sip:201@10.0.0.9"
    statements = _sql_statements(store)
    assert store.active_bindings(T0, "201") == [found]  # loaded once, then from memory
    assert statements == []
    assert store.active_bindings(T0, "202") == []
    assert store.active_bindings(T0, "999") == []  # no such extension: nothing cached
    assert "999" not in store._location.known
