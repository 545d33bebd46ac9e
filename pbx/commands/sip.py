"""`deskpbx sip ...`: tools for looking at SIP messages."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pbx.commands import UsageError


def register(subparsers: Any) -> None:
    sip = subparsers.add_parser("sip", help="SIP message tools")
    sub = sip.add_subparsers(dest="sip_command", metavar="SUBCOMMAND", required=True)
    parse = sub.add_parser("parse", help="parse a SIP message from FILE (- for stdin) as JSON")
    parse.add_argument("file", metavar="FILE")
    parse.set_defaults(handler=cmd_parse)


def cmd_parse(args: argparse.Namespace) -> int:
    import sys

    from pbx.sip.errors import ParseError
    from pbx.sip.message import parse_message

    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as fh:
                data = fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
    try:
        message = parse_message(data)
    except ParseError as exc:
        print(json.dumps({"error": exc.reason, "status": exc.status}))
        print(
            f"deskpbx: {args.file}: not a valid SIP message: {exc.status} {exc.reason}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(message.to_dict(), indent=2, ensure_ascii=False))
    return 0
