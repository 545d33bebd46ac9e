"""`deskpbx backup FILE`: a consistent copy of the PBX's database, safe while it runs.

Everything an office configured lives in that one SQLite file: extensions (their HA1
hashes), trunks with their carrier passwords, routes, DIDs, ring groups, API tokens,
bans, CDRs and the recordings index. The copy is made with SQLite's online backup, so
calls go on meanwhile, and is readable by its owner only, like the database. Recordings
are files under DATA_DIR/recordings: copy that folder beside it. To restore, stop the
PBX and put the copy in place of DATA_DIR/deskpbx.db.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pbx.commands.ext import with_store

if TYPE_CHECKING:
    from pbx.store import Store


def register(subparsers: Any) -> None:
    backup = subparsers.add_parser(
        "backup", help="copy the database to FILE (consistent, while the PBX runs)"
    )
    backup.add_argument("file", metavar="FILE", type=Path)
    backup.set_defaults(handler=cmd_backup)


@with_store
def cmd_backup(args: argparse.Namespace, store: Store) -> int:
    size = store.backup(args.file)
    print(f"backed up {store.path} to {args.file} ({size:,} bytes)")
    return 0
