"""Finished calls' CDRs written in batches (Store.add_cdrs, Store.queue_cdr).

A queued CDR waits in memory; every read or write through the same Store, close(),
or `CDR_BATCH_MAX` queued rows write it, so this process never misses a call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.store import Cdr, Disposition, HangupSide, Store
from pbx.store.cdrs import CDR_BATCH_MAX

T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    # A long batch period: the flusher thread never writes during a test.
    with Store.in_dir(tmp_path, cdr_batch=3600.0) as opened:
        yield opened


@pytest.fixture
def other(tmp_path: Path, store: Store) -> Iterator[Store]:
    """Another connection to the same file (the CLI, the API test harness)."""
    with Store.in_dir(tmp_path) as opened:
        yield opened


def _cdr(n: int) -> Cdr:
    return Cdr.from_times(
        call_id=f"call-{n}", caller="201", callee="202", start=T0 + n, answer=T0 + n + 1,
        end=T0 + n + 31, disposition=Disposition.ANSWERED, sip_code=200, sip_reason="OK",
        hangup_side=HangupSide.CALLER, x_headers={"X-N": str(n)},
    )  # fmt: skip


def test_add_cdrs_returns_stored_copies_in_order(store: Store) -> None:
    stored = store.add_cdrs([_cdr(1), _cdr(2), _cdr(3)])
    assert [c.call_id for c in stored] == ["call-1", "call-2", "call-3"]
    ids = [c.id for c in stored]
    assert ids == [ids[0], ids[0] + 1, ids[0] + 2]
    assert [store.get_cdr(i) for i in ids] == stored
    assert stored[1].billsec == 30.0 and stored[1].x_headers == {"X-N": "2"}


def test_add_cdrs_of_nothing_writes_nothing(store: Store) -> None:
    assert store.add_cdrs([]) == []
    assert store.query_cdrs() == []


def test_queued_cdr_waits_for_the_batch(store: Store, other: Store) -> None:
    store.queue_cdr(_cdr(1))
    assert other.query_cdrs() == []  # still in memory


def test_a_read_through_the_same_store_writes_the_queue(store: Store, other: Store) -> None:
    store.queue_cdr(_cdr(1))
    store.queue_cdr(_cdr(2))
    [newest, oldest] = store.query_cdrs()
    assert (newest.call_id, oldest.call_id) == ("call-2", "call-1")
    assert store.find_cdr_of_call("call-1", T0 + 1) == oldest
    assert [c.call_id for c in other.query_cdrs()] == ["call-2", "call-1"]


def test_a_write_through_the_same_store_keeps_the_order(store: Store) -> None:
    store.queue_cdr(_cdr(1))
    [added] = store.add_cdrs([_cdr(2)])
    [first] = store.query_cdrs(caller="201", since=T0 + 1, until=T0 + 2)
    assert first.call_id == "call-1" and first.id is not None and first.id < added.id  # type: ignore[operator]


def test_a_full_batch_is_written_at_once(store: Store, other: Store) -> None:
    for n in range(CDR_BATCH_MAX - 1):
        store.queue_cdr(_cdr(n))
    assert other.query_cdrs() == []
    store.queue_cdr(_cdr(CDR_BATCH_MAX))
    assert len(other.query_cdrs(limit=1000)) == CDR_BATCH_MAX


def test_close_writes_the_queue(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path, cdr_batch=3600.0)
    store.queue_cdr(_cdr(7))
    store.close()
    with Store.in_dir(tmp_path) as reopened:
        assert [c.call_id for c in reopened.query_cdrs()] == ["call-7"]


def test_no_batch_period_writes_each_cdr_at_once(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path, cdr_batch=0) as store, Store.in_dir(tmp_path) as other:
        store.queue_cdr(_cdr(3))
        assert [c.call_id for c in other.query_cdrs()] == ["call-3"]


def test_a_closed_store_refuses_a_cdr(tmp_path: Path) -> None:
    store = Store.in_dir(tmp_path)
    store.close()
    with pytest.raises(Exception, match="closed"):
        store.queue_cdr(_cdr(1))


def test_a_queued_cdr_knows_the_id_its_row_gets(store: Store, other: Store) -> None:
    first = store.add_cdr(_cdr(1))
    queued = [store.queue_cdr(_cdr(n)) for n in (2, 3)]
    assert [c.id for c in queued] == [first.id + 1, first.id + 2]
    assert other.get_cdr(queued[0].id) is None  # not written yet
    assert [store.get_cdr(c.id) for c in queued] == queued  # the read writes the queue


def test_ids_stay_in_order_when_queued_and_direct_writes_mix(store: Store) -> None:
    a = store.queue_cdr(_cdr(1))
    b = store.add_cdr(_cdr(2))  # a recorded call: written at once, after the queue
    c = store.queue_cdr(_cdr(3))
    assert a.id is not None and b.id == a.id + 1 and c.id == b.id + 1
    assert [store.get_cdr(x.id).call_id for x in (a, b, c)] == ["call-1", "call-2", "call-3"]


def test_a_deleted_rows_id_is_not_given_again(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path, cdr_batch=3600.0) as store:
        ids = [c.id for c in store.add_cdrs([_cdr(1), _cdr(2), _cdr(3)])]
        with store._transaction() as conn:
            conn.execute("DELETE FROM cdrs WHERE id = ?", (ids[-1],))
    with Store.in_dir(tmp_path, cdr_batch=3600.0) as store:
        queued = store.queue_cdr(_cdr(4))
        assert queued.id == ids[-1] + 1
        assert store.get_cdr(queued.id) == queued
