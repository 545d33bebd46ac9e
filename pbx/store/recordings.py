"""Store queries for the recordings index (the recording issue).

A mixin of `pbx.store.Store`: methods here use the store's `_transaction()`
and `_rows()` and return typed rows, so `Store` stays the only SQL writer.
The row type `Recording` lives here too, so this feature touches no shared
file. Times are wall-clock epoch seconds, sizes bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pbx.store.errors import InvalidValue
from pbx.store.mixin import StoreMixin

MAX_RECORDING_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded call: where its WAV file is and what it held when it was finished."""

    id: int
    call_id: str
    path: str
    start: float
    call_label: str = ""
    caller: str = ""
    callee: str = ""
    duration: float = 0.0
    size: int = 0
    sha256: str = ""
    complete: bool = False
    repaired: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Recording:
        values = dict(row)
        values["complete"] = bool(values["complete"])
        values["repaired"] = bool(values["repaired"])
        return cls(**values)

    def to_public_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class RecordingQueries(StoreMixin):
    """Mixed into Store."""

    def add_recording(
        self, call_id: str, path: str, start: float, *, call_label: str = "",
        caller: str = "", callee: str = "",
    ) -> Recording:  # fmt: skip
        """Index a recording that has just started (incomplete until `finish_recording`)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO recordings (call_id, call_label, caller, callee, path, start) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (call_id, call_label, caller, callee, path, start),
            )
        return self.get_recording_by_id(int(cursor.lastrowid or 0))

    def finish_recording(
        self, recording_id: int, *, duration: float, size: int, sha256: str, repaired: bool = False
    ) -> Recording:
        """Mark a recording complete with what its closed file holds."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE recordings SET duration = ?, size = ?, sha256 = ?, complete = 1, "
                "repaired = ? WHERE id = ?",
                (duration, size, sha256, int(repaired), recording_id),
            )
        return self.get_recording_by_id(recording_id)

    def get_recording(self, recording_id: int) -> Recording | None:
        rows = self._rows("recordings", "id = ?", [recording_id])
        return Recording.from_row(rows[0]) if rows else None

    def get_recording_by_id(self, recording_id: int) -> Recording:
        found = self.get_recording(recording_id)
        if found is None:
            raise InvalidValue(f"no recording {recording_id}")
        return found

    def recordings_of_call(self, call_id: str) -> list[Recording]:
        rows = self._rows("recordings", "call_id = ?", [call_id], order_by="start, id")
        return [Recording.from_row(row) for row in rows]

    def list_recordings(self, *, limit: int = 50) -> list[Recording]:
        """Newest first."""
        if not 1 <= limit <= MAX_RECORDING_LIMIT:
            raise InvalidValue(f"limit must be between 1 and {MAX_RECORDING_LIMIT}")
        rows = self._rows("recordings", order_by="start DESC, id DESC", limit=limit)
        return [Recording.from_row(row) for row in rows]

    def incomplete_recordings(self) -> list[Recording]:
        """Rows never finished: after a crash, the startup check repairs their files."""
        rows = self._rows("recordings", "complete = 0", order_by="start, id")
        return [Recording.from_row(row) for row in rows]

    def complete_recordings_oldest_first(self) -> list[Recording]:
        """The candidates for retention, oldest first (a recording in progress is never one)."""
        rows = self._rows("recordings", "complete = 1", order_by="start, id")
        return [Recording.from_row(row) for row in rows]

    def delete_recording(self, recording_id: int) -> bool:
        """Forget a recording and unlink it from its CDR; True if it existed. The file is the
        caller's to delete."""
        with self._transaction() as conn:
            found = conn.execute(
                "SELECT path FROM recordings WHERE id = ?", (recording_id,)
            ).fetchone()
            if found is None:
                return False
            conn.execute("DELETE FROM recordings WHERE id = ?", (recording_id,))
            conn.execute("UPDATE cdrs SET recording = NULL WHERE recording = ?", found)
        return True
