"""The location service's bindings in memory, written to the file behind the registrar's back.

A phone re-registers every few minutes and each REGISTER used to cost a SQLite transaction
(BEGIN, upsert, SELECT, COMMIT) on the PBX's only thread. `Store` keeps instead, under its
lock:

- `Location.known`: extension -> {contact URI: Binding} for the extensions a REGISTER has
  touched, loaded from the file once and kept equal to what the file will hold, expired
  bindings included until they are purged (RFC 3261 §10.3 step 7 compares a REGISTER with
  them);
- `Location.pending`: (extension, contact) -> the binding to write, or None to delete, for
  changes not in the file yet. Several refreshes of one binding inside a batch are one row
  write.

The pending changes are written in one transaction (`write_pending`) when `WRITE_BEHIND_MAX`
of them have gathered, `WRITE_BEHIND_S` after the first one (a timer thread; the Store's lock
makes that safe), before any other statement runs on the connection (so every read and write
of this Store sees them, in order), and when the Store closes (SIGTERM, `aclose()`). Another
process reading the file sees a registration up to `WRITE_BEHIND_S` late; a crash of the PBX
(SIGKILL, power cut) can lose that much, which the phones repair at their next refresh.

Order and ties are those of the SQL it replaces: active bindings are those with
`expires_at > now`, highest q first, then latest expiry, then contact.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pbx.store.rows import BINDING_COLUMNS, Binding

log = logging.getLogger(__name__)

WRITE_BEHIND_S = 0.05
"""Seconds a registration may wait in memory before its row is written."""

WRITE_BEHIND_MAX = 256
"""Pending binding changes that are written at once rather than waiting for the timer."""

UPSERT_BINDING = (
    f"INSERT INTO bindings ({', '.join(BINDING_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in BINDING_COLUMNS)}) "
    "ON CONFLICT (extension, contact) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in BINDING_COLUMNS[2:])
)
DELETE_BINDING = "DELETE FROM bindings WHERE extension = ? AND contact = ?"

Key = tuple[str, str]


@dataclass(slots=True)
class Location:
    """Bindings held in memory and the changes still owed to the file (see module doc)."""

    known: dict[str, dict[str, Binding]] = field(default_factory=dict)
    pending: dict[Key, Binding | None] = field(default_factory=dict)

    def forget(self, extension: str | None = None) -> None:
        """Drop the in-memory copy (of one extension, or all) after a write made in SQL."""
        if extension is None:
            self.known.clear()
        else:
            self.known.pop(extension, None)


def out_of_order(
    current: Mapping[str, Binding],
    final: Mapping[str, Binding | None],
    call_id: str,
    cseq: int,
) -> bool:
    """RFC 3261 §10.3 step 7: a stored binding of the same Call-ID with a CSeq at or above the
    request's makes the whole REGISTER out of order (compared with the new binding's own
    Call-ID and CSeq for an update, with the request's for a removal)."""
    for contact, binding in final.items():
        stored = current.get(contact)
        if stored is None:
            continue
        new_call_id, new_cseq = (call_id, cseq) if binding is None else (
            binding.call_id, binding.cseq)  # fmt: skip
        if stored.call_id == new_call_id and stored.cseq >= new_cseq:
            return True
    return False


def _order(binding: Binding) -> tuple[float, float, str]:
    return (-binding.q, -binding.expires_at, binding.contact)


def active(current: Iterable[Binding], now: float) -> list[Binding]:
    """The bindings not expired at `now`, in the store's order (q, expiry, contact)."""
    found = [b for b in current if b.expires_at > now]
    if len(found) > 1:
        found.sort(key=_order)
    return found


def normalized(binding: Binding) -> Binding:
    """`binding` as the file gives it back (REAL columns as floats, reachable a bool)."""
    if (binding.q.__class__ is float and binding.expires_at.__class__ is float
            and binding.reachable.__class__ is bool):  # fmt: skip
        return binding
    return Binding.from_row(binding.to_row() | {
        "q": float(binding.q), "expires_at": float(binding.expires_at)})  # fmt: skip


def write_pending(conn: sqlite3.Connection, pending: dict[Key, Binding | None]) -> int:
    """Write `pending` in one transaction; the number of changes written.

    A row whose extension is gone (removed through another connection since) is skipped,
    as the foreign key would refuse it; the others are written all the same.
    """
    deletes = [key for key, binding in pending.items() if binding is None]
    upserts = [binding.to_row() for binding in pending.values() if binding is not None]
    conn.execute("BEGIN IMMEDIATE")
    try:
        if deletes:
            conn.executemany(DELETE_BINDING, deletes)
        try:
            conn.execute("SAVEPOINT batch")
            conn.executemany(UPSERT_BINDING, upserts)
            conn.execute("RELEASE batch")
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
            upserts = _one_by_one(conn, upserts)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return len(deletes) + len(upserts)


def _one_by_one(conn: sqlite3.Connection, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    written = []
    for row in rows:
        try:
            conn.execute(UPSERT_BINDING, row)
        except sqlite3.IntegrityError:
            log.info("binding of removed extension %s not written", row["extension"])
            continue
        written.append(row)
    return written


def load(select: Callable[[str, object], list[dict[str, object]]], extension: str) -> dict[
        str, Binding]:  # fmt: skip
    """Every stored binding of `extension`, expired or not, by contact."""
    rows = select("SELECT * FROM bindings WHERE extension = ?", (extension,))
    return {str(row["contact"]): Binding.from_row(row) for row in rows}
