"""The store's extension cache and its one-transaction REGISTER update.

The cache must never hide a change: one made through this Store, or one
committed by another connection to the same file (the CLI's `deskpbx ext`
while `deskpbx serve` runs), which SQLite signals through PRAGMA data_version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pbx.store import Binding, Store, UnknownExtension
from pbx.store.store import EXTENSION_CACHE_SIZE

PASSWORD = "correct-horse"
T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.in_dir(tmp_path) as opened:
        opened.add_extension("201", PASSWORD)
        yield opened


@pytest.fixture
def other(tmp_path: Path, store: Store) -> Iterator[Store]:
    """A second connection to the same file, as a `deskpbx ext` command would open."""
    with Store.in_dir(tmp_path) as opened:
        yield opened


def _count_selects(store: Store) -> list[str]:
    seen: list[str] = []
    store._conn.set_trace_callback(
        lambda sql: seen.append(sql) if sql.startswith("SELECT") else None
    )
    return seen


def test_repeated_lookups_read_the_table_once(store: Store) -> None:
    seen = _count_selects(store)
    first = store.find_extension("201")
    second = store.find_extension("201")
    assert first is not None and first is second
    assert seen == ["SELECT * FROM extensions WHERE number = '201'"]


def test_extension_added_through_another_connection_is_seen(store: Store, other: Store) -> None:
    assert store.find_extension("202") is None  # a cached miss
    other.add_extension("202", PASSWORD, "Bob")
    found = store.find_extension("202")
    assert found is not None and found.name == "Bob"


def test_password_changed_through_another_connection_gives_the_new_ha1(
    store: Store, other: Store
) -> None:
    before = store.find_extension("201")
    assert before is not None
    other.set_password("201", "another-secret")
    after = store.find_extension("201")
    assert after is not None
    assert after.ha1_md5 == other.get_extension("201").ha1_md5 != before.ha1_md5


def test_extension_removed_or_disabled_elsewhere_is_seen(store: Store, other: Store) -> None:
    other.add_extension("203", PASSWORD)
    assert store.find_extension("203") is not None
    other.update_extension("201", enabled=False)
    other.remove_extension("203")
    extension = store.find_extension("201")
    assert extension is not None and extension.enabled is False
    assert store.find_extension("203") is None


def test_plain_sql_commit_by_another_process_is_seen(store: Store, tmp_path: Path) -> None:
    assert store.find_extension("201") is not None
    conn = sqlite3.connect(tmp_path / "deskpbx.db", isolation_level=None)
    try:
        conn.execute("UPDATE extensions SET name = 'Renamed' WHERE number = '201'")
    finally:
        conn.close()
    extension = store.find_extension("201")
    assert extension is not None and extension.name == "Renamed"


def test_own_writes_are_seen(store: Store) -> None:
    assert store.find_extension("204") is None
    store.add_extension("204", PASSWORD, "Dora")
    assert store.get_extension("204").name == "Dora"
    store.update_extension("204", name="Dot")
    assert store.get_extension("204").name == "Dot"
    old_ha1 = store.get_extension("204").ha1_sha256
    store.set_password("204", "new-password-1")
    assert store.get_extension("204").ha1_sha256 != old_ha1
    store.remove_extension("204")
    assert store.find_extension("204") is None


def test_cache_is_bounded(store: Store) -> None:
    for n in range(EXTENSION_CACHE_SIZE + 5):
        store.find_extension(str(10_000 + n))
    assert len(store._extensions) <= EXTENSION_CACHE_SIZE
    assert store.find_extension("201") is not None


# -- apply_registration (RFC 3261 10.3 steps 7-8) ------------------------------------------


def _binding(contact: str = "sip:201@192.168.1.20", **kw: object) -> Binding:
    values: dict[str, object] = dict(
        extension="201", contact=contact, source_host="203.0.113.7", source_port=41234,
        transport="UDP", expires_at=T0 + 600, call_id="c1", cseq=2,
    )  # fmt: skip
    values.update(kw)
    return Binding(**values)  # type: ignore[arg-type]


def test_registration_stores_and_returns_active_bindings(store: Store) -> None:
    store.upsert_binding(_binding("sip:201@old", expires_at=T0 - 1, call_id="x"))
    active = store.apply_registration(
        "201",
        [("sip:201@a", _binding("sip:201@a", q=0.5)), ("sip:201@b", _binding("sip:201@b"))],
        "c1", 2, T0,
    )  # fmt: skip
    assert active is not None
    assert [b.contact for b in active] == ["sip:201@b", "sip:201@a"]
    assert active == store.active_bindings(T0, "201")
    assert store.get_binding("201", "sip:201@a") == _binding("sip:201@a", q=0.5)


def test_out_of_order_registration_changes_nothing(store: Store) -> None:
    store.upsert_binding(_binding("sip:201@a", cseq=5))
    fresh = _binding("sip:201@b", cseq=4)
    stale = _binding("sip:201@a", cseq=4, expires_at=T0 + 9999)
    assert store.apply_registration("201", [("sip:201@b", fresh), ("sip:201@a", stale)],
                                    "c1", 4, T0) is None  # fmt: skip
    assert [b.contact for b in store.active_bindings(T0, "201")] == ["sip:201@a"]
    assert store.get_binding("201", "sip:201@a") == _binding("sip:201@a", cseq=5)
    # Same CSeq is out of order too; another Call-ID is not.
    assert store.apply_registration("201", [("sip:201@a", None)], "c1", 5, T0) is None
    assert store.get_binding("201", "sip:201@a") is not None
    other_call = replace(stale, call_id="c2", cseq=1)
    active = store.apply_registration("201", [("sip:201@a", other_call)], "c2", 1, T0)
    assert active == [other_call]


def test_registration_removes_and_last_value_of_a_contact_wins(store: Store) -> None:
    store.upsert_binding(_binding("sip:201@a", cseq=1))
    active = store.apply_registration(
        "201",
        [("sip:201@a", None), ("sip:201@b", _binding("sip:201@b", expires_at=T0 + 5)),
         ("sip:201@b", _binding("sip:201@b", expires_at=T0 + 60))],
        "c1", 2, T0,
    )  # fmt: skip
    assert active is not None
    assert [(b.contact, b.expires_at) for b in active] == [("sip:201@b", T0 + 60)]
    assert store.get_binding("201", "sip:201@a") is None


def test_registration_for_unknown_extension_is_rejected(store: Store) -> None:
    with pytest.raises(UnknownExtension):
        store.apply_registration(
            "299", [("sip:299@a", _binding("sip:299@a", extension="299"))], "c1", 2, T0
        )
    assert store.active_bindings(T0) == []


def test_registration_reads_once_then_runs_no_sql_until_the_batch_is_written(
    store: Store,
) -> None:
    store.find_extension("201")
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    store.apply_registration("201", [("sip:201@a", _binding("sip:201@a"))], "c1", 2, T0)
    assert seen == ["SELECT * FROM bindings WHERE extension = '201'"]  # loaded once
    seen.clear()
    active = store.apply_registration(
        "201", [("sip:201@a", _binding("sip:201@a", cseq=3))], "c1", 3, T0
    )
    assert seen == []  # a refresh is decided and answered from memory
    assert active == [_binding("sip:201@a", cseq=3)]
    store.flush()
    assert [sql.split()[0] for sql in seen] == ["BEGIN", "SAVEPOINT", "INSERT", "RELEASE",
                                                "COMMIT"]  # fmt: skip
    store._conn.set_trace_callback(None)
    assert store.get_binding("201", "sip:201@a") == _binding("sip:201@a", cseq=3)


# -- add_cdr returns what a read-back gives, without reading back --------------------------


def test_added_cdr_equals_the_stored_row(store: Store) -> None:
    from pbx.store import Cdr, Disposition, HangupSide

    cdr = Cdr.from_times(
        call_id="c-1", caller="201", callee="202", start=1_800_000_000, answer=1_800_000_002,
        end=1_800_000_010, disposition="ANSWERED", sip_code=200, sip_reason="OK",
        hangup_side=HangupSide.CALLEE, x_headers={"X-B": "2", "X-A": "1"},
        media_stats={"a": {"loss": 0.5}},
    )  # fmt: skip
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    added = store.add_cdr(cdr)
    store._conn.set_trace_callback(None)
    assert [sql.split()[0] for sql in seen] == ["BEGIN", "INSERT", "COMMIT"]
    read = store.get_cdr(added.id or 0)
    assert added == read
    assert added.disposition is Disposition.ANSWERED
    assert [type(added.start), type(added.answer), type(added.sip_code)] == [float, float, int]
    unanswered = store.add_cdr(replace(cdr, answer=None, call_id="c-2"))
    assert unanswered == store.get_cdr(unanswered.id or 0)
    assert unanswered.id == (added.id or 0) + 1


# -- the wal-index header spares the PRAGMA while nothing was committed ---------------------


def test_lookups_skip_data_version_until_some_connection_commits(
    store: Store, other: Store
) -> None:
    store.find_extension("201")
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    for _ in range(5):
        store.find_extension("201")
    assert seen == []  # nothing committed anywhere: not even the PRAGMA
    other.add_extension("202", PASSWORD, "Bob")
    found = store.find_extension("202")
    assert found is not None and found.name == "Bob"
    assert seen[0] == "PRAGMA data_version"
    seen.clear()
    store.set_setting("x", "1")  # our own commit moves the header too: one PRAGMA, no reload
    store.find_extension("202")
    assert seen[-1] == "PRAGMA data_version" and not any("extensions" in s for s in seen)


def test_watch_without_a_wal_index_always_says_maybe(tmp_path: Path) -> None:
    from pbx.store.schema import WalIndexWatch

    path = tmp_path / "plain.db"
    conn = sqlite3.connect(path)  # rollback journal: no -shm file
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    watch = WalIndexWatch(path)
    assert watch.maybe_changed() and watch.maybe_changed()
    watch.close()
    conn.close()
