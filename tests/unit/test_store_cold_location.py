"""The first REGISTER of each extension after a start (nothing in memory yet) reads its
extension and stored bindings without writing the other extensions' pending bindings:
a PBX restarted under many phones keeps batching their registrations. A read that could
see a pending row (the bindings table, the same extension's stored bindings) still
writes the batch first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.store import Binding, Store
from tests.unit.test_store_write_behind import PASSWORD, T0, _binding, _commits, _register

NUMBERS = [str(300 + i) for i in range(20)]


@pytest.fixture
def cold(tmp_path: Path) -> Iterator[Store]:
    """A store whose extensions exist in the file but nothing is cached (a restart)."""
    with Store.in_dir(tmp_path) as setup:
        for number in NUMBERS:
            setup.add_extension(number, PASSWORD)
    with Store.in_dir(tmp_path, write_behind=3600.0) as opened:
        yield opened


def test_first_registrations_after_a_start_are_batched(cold: Store) -> None:
    commits = _commits(cold)
    for number in NUMBERS:
        assert cold.find_extension(number) is not None  # the registrar's HA1 lookup
        assert _register(cold, _binding(number)) is not None
    assert commits == []  # none written yet: one batch later, not one per REGISTER
    assert len(cold._location.pending) == len(NUMBERS)
    cold.flush()
    assert commits == ["COMMIT"]
    rows = cold._select("SELECT extension FROM bindings ORDER BY extension", ())
    assert [row["extension"] for row in rows] == NUMBERS


def test_a_read_of_the_bindings_table_still_writes_the_batch_first(cold: Store) -> None:
    for number in NUMBERS[:3]:
        _register(cold, _binding(number))
    active = cold.active_bindings(T0)  # reads the bindings table
    assert sorted(b.extension for b in active) == NUMBERS[:3]
    assert cold._location.pending == {}


def test_an_extension_reloaded_with_changes_pending_writes_them_first(cold: Store) -> None:
    first = _binding(NUMBERS[0])
    _register(cold, first)
    _register(cold, _binding(NUMBERS[1]))
    cold._location.forget(NUMBERS[0])  # dropped from memory with its change still owed
    reloaded = cold._load_location(NUMBERS[0])
    assert reloaded == {first.contact: first}
    assert cold._location.pending == {}


def test_an_unrelated_reload_leaves_the_batch_alone(cold: Store) -> None:
    _register(cold, _binding(NUMBERS[0]))
    commits = _commits(cold)
    assert cold._load_location(NUMBERS[5]) == {}
    assert commits == [] and len(cold._location.pending) == 1
    stored: Binding | None = cold.get_binding(NUMBERS[0], _binding(NUMBERS[0]).contact)
    assert stored is not None and stored.cseq == 2  # a bindings read: written, then found
    assert commits == ["COMMIT"]
