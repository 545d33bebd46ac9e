"""What the window reads from the embedded PBX: history, directory, status.

History and directory come from the PBX's SQLite database, which the GUI
opens with its own `Store` (WAL lets it read while the PBX thread writes;
design: one writer per row, short transactions). The PBX status needs the
B2BUA's live call count, so `pbx_status` runs on the PBX loop via the bridge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.models import DirectoryEntry
from app.phone import PbxStatus

if TYPE_CHECKING:
    from pbx.server import Pbx
    from pbx.store import Cdr, Store

HISTORY_LIMIT = 200


class PbxDesk:
    """Reads for the window; `me` is the softphone's extension (history direction)."""

    def __init__(self, store: Store, me: str, *, wall: Callable[[], float] = time.time) -> None:
        self.store = store
        self.me = me
        self.wall = wall

    def history(self, limit: int = HISTORY_LIMIT) -> list[Cdr]:
        """The calls this softphone took part in, newest first."""
        made = self.store.query_cdrs(limit=limit, caller=self.me)
        taken = self.store.query_cdrs(limit=limit, callee=self.me)
        both = {c.id: c for c in made + taken}.values()
        return sorted(both, key=lambda c: (c.start, c.id or 0), reverse=True)[:limit]

    def directory(self) -> list[DirectoryEntry]:
        counts = self.store.active_binding_counts(self.wall())
        return [
            DirectoryEntry(e.number, e.name, counts.get(e.number, 0), e.enabled)
            for e in self.store.list_extensions()
        ]


def pbx_status(pbx: Pbx) -> PbxStatus:
    """Run on the PBX loop: phones registered and calls in progress."""
    status = pbx.status()
    return PbxStatus(
        running=True,
        phones_registered=int(status["registered"]),  # type: ignore[call-overload]
        calls_in_progress=int(status["active_calls"]),  # type: ignore[call-overload]
    )
