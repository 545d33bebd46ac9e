"""The `deskpbx` command line.

Each command group lives in its own module under `pbx.commands` and exposes
`register(subparsers)`; its handlers take the parsed arguments and return an
exit status. A `UsageError` raised anywhere becomes one readable line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from pbx import __version__
from pbx.commands import COMMAND_MODULES, UsageError
from pbx.tuning import lean_log_records


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deskpbx",
        description="DeskPBX: a mini-PBX with registrar, call bridging, recording and trunks.",
    )
    parser.add_argument("--version", action="version", version=f"deskpbx {__version__}")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the database and recordings live (default: the per-user data directory)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging; -v adds SIP traces"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"pbx.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    lean_log_records()
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except UsageError as exc:
        print(f"deskpbx: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
