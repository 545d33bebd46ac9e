"""Qt item models: the calls in progress, the call history, the extension directory.

Views read models; models change only through the methods below, called on
the GUI thread with plain values (`CallView`, `Cdr`, `DirectoryEntry`), so
every change is announced with the proper begin/end or dataChanged signals
(checked by QAbstractItemModelTester in tests/gui).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.phone import CallDirection, CallState, CallView
from app.qt import QAbstractListModel, QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

if TYPE_CHECKING:
    from pbx.store import Cdr

Index = QModelIndex | QPersistentModelIndex
ROW_ROLE = int(Qt.ItemDataRole.UserRole)
"""data(index, ROW_ROLE) gives the row's value object (CallView, HistoryEntry...)."""

STATE_WORDS = {
    CallState.DIALING: "Calling…",
    CallState.RINGING: "Ringing",
    CallState.EARLY_MEDIA: "Ringing (early media)",
    CallState.CONNECTED: "Connected",
    CallState.ON_HOLD: "On hold",
    CallState.ENDING: "Hanging up…",
    CallState.ENDED: "Ended",
}


def describe_call(view: CallView) -> str:
    who = view.display_name or view.remote
    if view.ringing_in:
        return f"{who} — incoming call"
    state = "On hold (by the other side)" if view.remote_hold and not view.on_hold else None
    return f"{who} — {state or STATE_WORDS[view.state]}"


class CallsModel(QAbstractListModel):
    """The calls in progress, oldest first; an ended call leaves the list."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._calls: list[CallView] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt signature)
        return 0 if parent.isValid() else len(self._calls)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._calls):
            return None
        view = self._calls[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return describe_call(view)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return describe_call(view)
        if role == ROW_ROLE:
            return view
        return None

    def apply(self, view: CallView) -> None:
        """Insert, update or (when it ended) remove the call `view.key`."""
        row = self.row_of(view.key)
        if row is None:
            if view.live:
                end = len(self._calls)
                self.beginInsertRows(QModelIndex(), end, end)
                self._calls.append(view)
                self.endInsertRows()
        elif not view.live:
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._calls[row]
            self.endRemoveRows()
        else:
            self._calls[row] = view
            index = self.index(row)
            self.dataChanged.emit(index, index)

    def row_of(self, key: str) -> int | None:
        return next((i for i, c in enumerate(self._calls) if c.key == key), None)

    def get(self, key: str) -> CallView | None:
        row = self.row_of(key)
        return None if row is None else self._calls[row]

    def calls(self) -> list[CallView]:
        return list(self._calls)

    def active(self) -> CallView | None:
        """The call the panel shows: the newest one not waiting to be answered."""
        for view in reversed(self._calls):
            if not view.ringing_in:
                return view
        return None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One CDR as the user sees it: the other party and which way the call went."""

    when: float
    direction: CallDirection
    number: str
    duration: float
    result: str


RESULT_WORDS = {  # pbx.store.Disposition values (imported lazily: launch time)
    "ANSWERED": "Answered",
    "BUSY": "Busy",
    "NO ANSWER": "No answer",
    "FAILED": "Failed",
    "CANCELLED": "Cancelled",
}
MISSED = frozenset({"NO ANSWER", "CANCELLED"})


def history_entry(cdr: Cdr, me: str) -> HistoryEntry:
    """The CDR seen from extension `me` (the softphone's own number)."""
    outgoing = cdr.caller == me
    direction = CallDirection.OUTGOING if outgoing else CallDirection.INCOMING
    number = cdr.callee if outgoing else cdr.caller
    disposition = cdr.disposition.value
    result = RESULT_WORDS.get(disposition, disposition.title())
    if not outgoing and disposition in MISSED:
        result = "Missed"
    return HistoryEntry(cdr.start, direction, number, cdr.billsec, result)


def format_duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _when(entry: HistoryEntry) -> str:
    return dt.datetime.fromtimestamp(entry.when).strftime("%Y-%m-%d %H:%M")


HISTORY_COLUMNS: tuple[tuple[str, Callable[[HistoryEntry], str]], ...] = (
    ("When", _when),
    ("", lambda e: "→" if e.direction is CallDirection.OUTGOING else "←"),
    ("Number", lambda e: e.number),
    ("Duration", lambda e: format_duration(e.duration)),
    ("Result", lambda e: e.result),
)


class _RowsTable(QAbstractTableModel):
    """A read-only table over a list of frozen rows, replaced as a whole."""

    columns: tuple[tuple[str, Callable[[Any], str]], ...] = ()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[index.column()][1](row)
        if role == ROW_ROLE:
            return row
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or orientation != Qt.Orientation.Horizontal:
            return None
        return self.columns[section][0] if 0 <= section < len(self.columns) else None

    def set_rows(self, rows: Sequence[Any]) -> None:
        if list(rows) == self._rows:
            return  # no reset: the view keeps its selection when nothing changed
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row(self, row: int) -> Any:
        return self._rows[row]


class HistoryModel(_RowsTable):
    """Finished calls, newest first, from the embedded PBX's CDRs."""

    columns = HISTORY_COLUMNS

    def set_cdrs(self, cdrs: Sequence[Cdr], me: str) -> None:
        self.set_rows([history_entry(cdr, me) for cdr in cdrs])


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    number: str
    name: str
    registered: int
    """How many contacts (devices) the extension has registered now."""
    enabled: bool = True


def _presence(entry: DirectoryEntry) -> str:
    if not entry.enabled:
        return "Disabled"
    if entry.registered == 0:
        return "Offline"
    return "Online" if entry.registered == 1 else f"Online ({entry.registered} devices)"


class DirectoryModel(_RowsTable):
    """The PBX's extensions with their registration state."""

    columns = (
        ("Extension", lambda e: e.number),
        ("Name", lambda e: e.name),
        ("State", _presence),
    )
