"""`deskpbx cdr`: the newest call detail records, as a table, JSON or CSV.

Times are shown in local time; durations as m:ss (h:mm:ss past an hour),
the way a PBX admin reads a call log. JSON output carries the raw epoch
seconds and every column, the shape the HTTP API serves; `--csv` is the HTTP
API's export (GET /api/v1/cdrs.csv), every matching call, for the monthly
bill check in a spreadsheet.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from pbx.commands import UsageError
from pbx.commands.ext import format_table, with_store

if TYPE_CHECKING:
    from pbx.store import Cdr, Store

DEFAULT_LIMIT = 20
HEADERS = ("TIME", "CALLER", "CALLEE", "DISPOSITION", "CODE", "DURATION", "BILLSEC")


def register(subparsers: Any) -> None:
    cdr = subparsers.add_parser("cdr", help="show the newest call detail records")
    cdr.add_argument(
        "--limit", metavar="N", default=None,
        help=f"how many records, newest first (default {DEFAULT_LIMIT}; with --csv: all)",
    )  # fmt: skip
    cdr.add_argument("--json", action="store_true", help="print a JSON array")
    cdr.add_argument("--csv", action="store_true", help="print CSV (RFC 4180), every column")
    cdr.add_argument(
        "--since",
        metavar="WHEN",
        help="only calls that started at or after WHEN "
        "(YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]' local time, or epoch seconds)",
    )
    cdr.add_argument("--until", metavar="WHEN", help="only calls that started before WHEN")
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


def parse_when(text: str, option: str) -> float:
    """'2026-11-01', '2026-11-01 08:30', '2026-11-01T08:30:15' (local time) or epoch s."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: use YYYY-MM-DD, 'YYYY-MM-DD HH:MM[:SS]' or epoch seconds"
        ) from None


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
    if args.json and args.csv:
        raise UsageError("--json and --csv: choose one")
    wanted: dict[str, Any] = {
        "caller": args.caller,
        "callee": args.callee,
        "disposition": args.disposition.upper().replace("_", " ") if args.disposition else None,
        "since": parse_when(args.since, "--since") if args.since else None,
        "until": parse_when(args.until, "--until") if args.until else None,
    }
    if args.csv:
        from pbx.store.views import CSV_MAX_ROWS

        limit = parse_limit(args.limit) if args.limit is not None else CSV_MAX_ROWS
        write_csv(store, wanted, min(limit, CSV_MAX_ROWS), sys.stdout)
        return 0
    limit = parse_limit(args.limit if args.limit is not None else str(DEFAULT_LIMIT))
    cdrs = store.query_cdrs(limit=limit, **wanted)
    if args.json:
        print(json.dumps([c.to_public_dict() for c in cdrs], indent=2, ensure_ascii=False))
    elif not cdrs:
        print("no calls recorded")
    else:
        print(format_table(HEADERS, [table_row(c) for c in cdrs]))
    return 0


def write_csv(store: Store, wanted: dict[str, Any], limit: int, out: TextIO) -> None:
    """Every matching CDR, newest first, read in pages (the HTTP API's export, here)."""
    from pbx.store.views import CSV_COLUMNS, CSV_PAGE, cdr_csv_row

    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 §2
    writer.writerow(CSV_COLUMNS)
    before: tuple[float, int] | None = None
    sent = 0
    while sent < limit:
        page = store.cdr_page(limit=min(CSV_PAGE, limit - sent), before=before, **wanted)
        writer.writerows(cdr_csv_row(cdr) for cdr in page)
        sent += len(page)
        if len(page) < CSV_PAGE:
            return
        last = page[-1]
        assert last.id is not None
        before = (last.start, last.id)
