"""CDR rows: one INSERT per finished call, many calls per transaction.

A CDR is written when its call ends (pbx.b2bua). Committing each one on its own
cost the PBX a WAL commit per call; `Store.queue_cdr` lets finished calls wait
in memory (at most `CDR_BATCH_S` seconds or `CDR_BATCH_MAX` rows) and
`insert_cdrs` writes the batch in one transaction. Every read through the
Store writes the queue first, as does `Store.close()` (SIGTERM, `aclose()`), so
this process never sees a call without its CDR; another process reading the
file sees it up to `CDR_BATCH_S` late.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from pbx.store.rows import Cdr

CDR_BATCH_S = 0.1
"""Seconds a finished call's CDR may wait in memory before its row is written."""

CDR_BATCH_MAX = 64
"""Queued CDRs that are written at once rather than waiting for the timer."""

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
