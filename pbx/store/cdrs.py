"""CDR rows: one INSERT per finished call, many calls per transaction.

A CDR is written when its call ends (pbx.b2bua). Committing each one on its own
cost the PBX a WAL commit per call; `Store.queue_cdr` lets finished calls wait
in memory (at most `CDR_BATCH_S` seconds or `CDR_BATCH_MAX` rows) and
`insert_cdrs` writes the batch in one transaction. Every read through the
Store writes the queue first, as does `Store.close()` (SIGTERM, `aclose()`), so
this process never sees a call without its CDR; another process reading the
file sees it up to `CDR_BATCH_S` late.

A queued CDR gets its row id when it is queued, not when it is written: the
PBX is the only writer of the table, so ids are handed out from the highest
one the file has seen (AUTOINCREMENT's sequence included, so a deleted row's
id is never given again). The `call.ended` event can then name the CDR a
client may fetch (`GET /api/v1/cdrs/{id}` writes the queue first) without
forcing the batch out per call.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pbx.store.errors import InvalidValue
from pbx.store.mixin import StoreMixin
from pbx.store.rows import Cdr, Disposition, parse_enum

CDR_BATCH_S = 0.1
"""Seconds a finished call's CDR may wait in memory before its row is written."""

CDR_BATCH_MAX = 64
"""Queued CDRs that are written at once rather than waiting for the timer."""

MAX_CDR_LIMIT = 10_000
"""The most CDRs one query returns."""

_REAL_COLUMNS = ("start", "answer", "end", "duration", "billsec")


def insert_cdrs(conn: sqlite3.Connection, cdrs: Sequence[Cdr]) -> list[Cdr]:
    """INSERT `cdrs` on `conn` (the caller holds the transaction); the rows as stored.

    Each copy carries its new id and what get_cdr() would read back, without the
    SELECT: the row as written, with the column affinities SQLite applies (REAL
    columns hold floats, INTEGER ones ints).
    """
    stored_rows = []
    sql, keys = "", tuple[str, ...]()
    for cdr in cdrs:
        row = cdr.to_row()
        if tuple(row) != keys:  # the same columns for every row unless one brings its id
            keys = tuple(row)
            columns = ", ".join(f'"{c}"' for c in row)
            placeholders = ", ".join(f":{c}" for c in row)
            sql = f"INSERT INTO cdrs ({columns}) VALUES ({placeholders})"
        cursor = conn.execute(sql, row)
        stored = {**row, "id": int(cursor.lastrowid or 0)}
        for column in _REAL_COLUMNS:
            if isinstance(stored[column], int):
                stored[column] = float(stored[column])
        if isinstance(stored["sip_code"], float) and stored["sip_code"].is_integer():
            stored["sip_code"] = int(stored["sip_code"])
        stored_rows.append(Cdr.from_row(stored))
    return stored_rows


def _highest_cdr_id(conn: sqlite3.Connection) -> int:
    """The highest id the cdrs table has used: its rows and AUTOINCREMENT's sequence."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(id) FROM cdrs), 0),"
        " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'cdrs'), 0))"
    ).fetchone()
    return int(row[0])


class CdrQueries(StoreMixin):
    """Mixed into Store: writing (at once or batched) and querying CDRs."""

    if TYPE_CHECKING:
        _conn: sqlite3.Connection
        _lock: threading.RLock
        _closed: bool
        _parked: bool
        _cdrs: list[Cdr]
        cdr_batch: float

        def flush(self) -> None: ...

        def _flush_later(self) -> None: ...

    _next_cdr_id: int | None = None
    """The id the next queued CDR gets; None until the first one reads the table."""

    def add_cdr(self, cdr: Cdr) -> Cdr:
        """Store a finished call now; the returned copy carries its new id."""
        [stored] = self.add_cdrs([cdr])
        return stored

    def add_cdrs(self, cdrs: Sequence[Cdr]) -> list[Cdr]:
        """Store finished calls in one transaction; copies carrying their new ids, in order."""
        if not cdrs:
            return []
        with self._transaction() as conn:
            stored = insert_cdrs(conn, cdrs)
            if self._next_cdr_id is not None:  # still under the lock
                highest = max(cdr.id or 0 for cdr in stored)
                self._next_cdr_id = max(self._next_cdr_id, highest + 1)
            return stored

    def queue_cdr(self, cdr: Cdr) -> Cdr:
        """Store a finished call within `cdr_batch` seconds, batched with others (pbx.store.cdrs);
        the copy returned carries the id its row will have.

        Any read or write through this Store, and close(), writes the queue first.
        """
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            if cdr.id is None:
                cdr = dataclasses.replace(cdr, id=self._allot_cdr_id())
            self._cdrs.append(cdr)
            if len(self._cdrs) >= CDR_BATCH_MAX or self.cdr_batch <= 0:
                self.flush()
            elif self._parked:
                self._flush_later()
            return cdr

    def _allot_cdr_id(self) -> int:
        """The next row id (the caller holds the lock); see the module docstring."""
        next_id = self._next_cdr_id
        if next_id is None:
            next_id = _highest_cdr_id(self._conn) + 1
        self._next_cdr_id = next_id + 1
        return next_id

    def get_cdr(self, cdr_id: int) -> Cdr | None:
        rows = self._rows("cdrs", "id = ?", [cdr_id])
        return Cdr.from_row(rows[0]) if rows else None

    def query_cdrs(
        self,
        *,
        limit: int = 50,
        since: float | None = None,
        until: float | None = None,
        caller: str | None = None,
        callee: str | None = None,
        disposition: Disposition | str | None = None,
    ) -> list[Cdr]:
        """Newest first. `since <= start < until` (epoch s); caller/callee match exactly."""
        if not 1 <= limit <= MAX_CDR_LIMIT:
            raise InvalidValue(f"limit must be between 1 and {MAX_CDR_LIMIT}")
        if disposition is not None:
            disposition = parse_enum(Disposition, disposition, "disposition").value
        filters = {
            "start >= :since": since,
            "start < :until": until,
            "caller = :caller": caller,
            "callee = :callee": callee,
            "disposition = :disposition": disposition,
        }
        clauses = [clause for clause, value in filters.items() if value is not None]
        args = {"since": since, "until": until, "caller": caller, "callee": callee,
                "disposition": disposition}  # fmt: skip
        where = " AND ".join(clauses) or None
        rows = self._rows("cdrs", where, args, order_by="start DESC, id DESC", limit=limit)
        return [Cdr.from_row(row) for row in rows]
