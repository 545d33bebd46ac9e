"""`deskpbx cdr`: the newest call detail records, as a table or JSON.

Times are shown in local time; durations as m:ss (h:mm:ss past an hour),
the way a PBX admin reads a call log. JSON output carries the raw epoch
seconds and every column, the shape the HTTP API will serve.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pbx.commands import UsageError
from pbx.commands.ext import format_table, with_store

if TYPE_CHECKING:
    from pbx.store import Cdr, Store

DEFAULT_LIMIT = 20
HEADERS = ("TIME", "CALLER", "CALLEE", "DISPOSITION", "CODE", "DURATION", "BILLSEC")


def register(subparsers: Any) -> None:
    cdr = subparsers.add_parser("cdr", help="show the newest call detail records")
    cdr.add_argument(
        "--limit", metavar="N", default=str(DEFAULT_LIMIT),
        help=f"how many records, newest first (default {DEFAULT_LIMIT})",
    )  # fmt: skip
    cdr.add_argument("--json", action="store_true", help="print a JSON array")
    cdr.add_argument("--caller", metavar="NUM", help="only calls from this caller")
    cdr.add_argument("--callee", metavar="NUM", help="only calls to this callee")
    cdr.add_argument(
        "--disposition", metavar="D",
        help="only ANSWERED, BUSY, NO_ANSWER, FAILED or CANCELLED calls",
    )  # fmt: skip
    cdr.set_defaults(handler=cmd_cdr)


def parse_limit(text: str) -> int:
    """--limit is checked here, not by argparse, so a bad value is one line, exit 2."""
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit < 1:
        raise UsageError(f"--limit must be a positive integer, not {text!r}")
    return limit


def format_seconds(seconds: float) -> str:
    """42.4 -> '0:42', 3723 -> '1:02:03'."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def table_row(cdr: Cdr) -> list[str]:
    return [
        datetime.fromtimestamp(cdr.start).strftime("%Y-%m-%d %H:%M:%S"),
        cdr.caller,
        cdr.callee,
        cdr.disposition.value,
        str(cdr.sip_code) if cdr.sip_code else "",
        format_seconds(cdr.duration),
        format_seconds(cdr.billsec),
    ]


@with_store
def cmd_cdr(args: argparse.Namespace, store: Store) -> int:
    limit = parse_limit(args.limit)
    disposition = args.disposition.upper().replace("_", " ") if args.disposition else None
    cdrs = store.query_cdrs(
        limit=limit, caller=args.caller, callee=args.callee, disposition=disposition
    )
    if args.json:
        print(json.dumps([c.to_public_dict() for c in cdrs], indent=2, ensure_ascii=False))
    elif not cdrs:
        print("no calls recorded")
    else:
        print(format_table(HEADERS, [table_row(c) for c in cdrs]))
    return 0
