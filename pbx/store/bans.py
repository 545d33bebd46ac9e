"""Bans for password guessing, kept in the database so a restart does not free a scanner.

pbx.auth_ban decides and holds the bans in memory (the check on every message is a dict
test); this table is their copy on disk: written when a ban starts or is lifted, read when
the PBX starts, and read and written by `deskpbx ban list|lift` from another process (the
running PBX re-reads it every minute, so a lift from the command line takes effect within
one; the HTTP API's lift is immediate). Times are wall-clock epoch seconds.
"""

from __future__ import annotations

from pbx.store.mixin import StoreMixin

MIGRATION = """
CREATE TABLE bans (
    address TEXT PRIMARY KEY,
    until REAL NOT NULL,
    created REAL NOT NULL
)
"""


class BanQueries(StoreMixin):
    """Mixed into Store."""

    def save_ban(self, address: str, until: float, now: float) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO bans (address, until, created) VALUES (?, ?, ?) "
                "ON CONFLICT (address) DO UPDATE SET until = excluded.until",
                (address, until, now),
            )

    def delete_ban(self, address: str) -> bool:
        """Remove `address`'s ban; False if there was none."""
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM bans WHERE address = ?", (address,))
        return cursor.rowcount > 0

    def active_bans(self, now: float) -> dict[str, float]:
        """Address -> when its ban ends, for bans not yet over (ended ones are deleted)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM bans WHERE until <= ?", (now,))
        return {row["address"]: row["until"] for row in self._rows("bans", order_by="address")}
