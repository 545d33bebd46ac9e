"""Call detail records in the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.store import DB_FILENAME, Cdr, Disposition, HangupSide, InvalidValue, Store

T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.in_dir(tmp_path) as opened:
        yield opened


def _cdr(n: int, **kw) -> Cdr:
    values = dict(
        call_id=f"call-{n}",
        caller="201",
        callee="202",
        start=T0 + n * 100,
        answer=T0 + n * 100 + 5,
        end=T0 + n * 100 + 65,
        disposition=Disposition.ANSWERED,
        sip_code=200,
        sip_reason="OK",
        hangup_side=HangupSide.CALLER,
    )
    values.update(kw)
    return Cdr.from_times(**values)


def test_from_times_derives_duration_and_billsec() -> None:
    cdr = _cdr(0)
    assert (cdr.duration, cdr.billsec) == (65.0, 60.0)
    unanswered = _cdr(0, answer=None, disposition=Disposition.NO_ANSWER, sip_code=408)
    assert (unanswered.duration, unanswered.billsec) == (65.0, 0.0)


def test_add_cdr_assigns_ids_and_round_trips(store: Store) -> None:
    cdr = _cdr(
        1,
        x_headers={"X-Account": "42", "X-Campaign": "spring"},
        media_stats={"caller": {"packets": 3000, "lost": 2, "jitter_ms": 4.5}},
        recording="recordings/call-1.wav",
    )
    first = store.add_cdr(cdr)
    second = store.add_cdr(_cdr(2))
    assert first.id is not None and second.id == first.id + 1
    assert first == Cdr(**{**{f: getattr(cdr, f) for f in cdr.__slots__}, "id": first.id})
    assert store.get_cdr(first.id) == first
    assert store.get_cdr(9999) is None


def test_json_columns_are_json_text_on_disk(store: Store, tmp_path: Path) -> None:
    store.add_cdr(_cdr(1, x_headers={"X-B": "2", "X-A": "1"}))
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    row = conn.execute("SELECT x_headers, media_stats, disposition FROM cdrs").fetchone()
    conn.close()
    assert row == ('{"X-A": "1", "X-B": "2"}', None, "ANSWERED")


def test_query_is_newest_first_with_limit(store: Store) -> None:
    for n in (3, 1, 4, 2):
        store.add_cdr(_cdr(n))
    assert [c.call_id for c in store.query_cdrs()] == ["call-4", "call-3", "call-2", "call-1"]
    assert [c.call_id for c in store.query_cdrs(limit=2)] == ["call-4", "call-3"]


def test_same_start_breaks_tie_by_id(store: Store) -> None:
    store.add_cdr(_cdr(1, call_id="a"))
    store.add_cdr(_cdr(1, call_id="b"))
    assert [c.call_id for c in store.query_cdrs()] == ["b", "a"]


def test_query_filters(store: Store) -> None:
    store.add_cdr(_cdr(1))
    store.add_cdr(_cdr(2, caller="203", disposition=Disposition.BUSY, answer=None, sip_code=486))
    store.add_cdr(_cdr(3, callee="204", disposition=Disposition.CANCELLED, answer=None))
    store.add_cdr(_cdr(4, disposition="NO ANSWER", answer=None))  # type: ignore[arg-type]

    def ids(**kw) -> list[str]:
        return [c.call_id for c in store.query_cdrs(**kw)]

    assert ids(caller="203") == ["call-2"]
    assert ids(callee="204") == ["call-3"]
    assert ids(disposition=Disposition.BUSY) == ["call-2"]
    assert ids(disposition="CANCELLED") == ["call-3"]
    assert ids(since=T0 + 200) == ["call-4", "call-3", "call-2"]
    assert ids(until=T0 + 300) == ["call-2", "call-1"]
    assert ids(since=T0 + 200, until=T0 + 300) == ["call-2"]
    assert ids(caller="201", callee="202") == ["call-4", "call-1"]
    assert ids(caller="999") == []


@pytest.mark.parametrize("limit", [0, -1, 10_001])
def test_limit_out_of_range_is_rejected(store: Store, limit: int) -> None:
    with pytest.raises(InvalidValue, match="limit must be between 1 and 10000"):
        store.query_cdrs(limit=limit)


def test_unknown_disposition_filter_is_rejected(store: Store) -> None:
    with pytest.raises(InvalidValue, match="disposition must be one of: ANSWERED, BUSY"):
        store.query_cdrs(disposition="HUNG")


def test_public_dict_has_enum_text() -> None:
    public = _cdr(1, x_headers={"X-A": "1"}).to_public_dict()
    assert public["disposition"] == "ANSWERED"
    assert public["hangup_side"] == "caller"
    assert public["x_headers"] == {"X-A": "1"}
    assert public["id"] is None


def test_bad_disposition_or_hangup_side_is_rejected_on_add(store: Store) -> None:
    with pytest.raises(InvalidValue, match="disposition must be one of"):
        store.add_cdr(_cdr(1, disposition="HUNG UP"))
    with pytest.raises(InvalidValue, match="hangup side must be one of: caller, callee, system"):
        store.add_cdr(_cdr(1, hangup_side="nobody"))
    assert store.query_cdrs() == []
