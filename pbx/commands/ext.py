"""`deskpbx ext ...`: manage extensions (local phone accounts) in the store.

Passwords never touch the disk: the store keeps digest HA1 values only
(RFC 7616 §3.4.2). A password comes from --password, --generate (printed once),
a twice-typed prompt on a terminal, or one line of stdin for scripts.

Also home of the helpers the `cdr` group shares: `with_store` opens the store
of the data directory and turns any StoreError into a UsageError (one line on
stderr, exit 2); `format_table` prints aligned columns.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import secrets
import string
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pbx.commands import UsageError, data_dir

if TYPE_CHECKING:
    from pbx.store import Store

GENERATED_PASSWORD_LENGTH = 16
# No look-alikes (0/O, 1/l/I): generated passwords are typed into phone keypads and web UIs.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
RECORD_CHOICES = ("always", "never", "on_demand")
PERMISSION_CHOICES = ("internal", "local", "national", "international")

StoreHandler = Callable[[argparse.Namespace, "Store"], int]


def with_store(handler: StoreHandler) -> Callable[[argparse.Namespace], int]:
    """Run `handler(args, store)` on the data directory's store; StoreError -> UsageError."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from pbx.store import Store, StoreError

        try:
            with Store.in_dir(data_dir(args)) as store:
                return handler(args, store)
        except StoreError as exc:
            raise UsageError(str(exc)) from exc

    return run


def print_json(items: object) -> None:
    """`list --json`: indented, non-ASCII kept (names of people and places)."""
    print(json.dumps(items, indent=2, ensure_ascii=False))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, no trailing blanks."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
             for line in [headers, *rows]]  # fmt: skip
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    ext = subparsers.add_parser("ext", help="manage extensions (phone accounts)")
    sub = ext.add_subparsers(dest="ext_command", metavar="SUBCOMMAND", required=True)

    add = sub.add_parser("add", help="add an extension")
    add.add_argument("number", metavar="NUM", help="2 to 10 digits; also the SIP username")
    _password_options(add)
    add.add_argument("--name", default="", help="display name")
    add.add_argument(
        "--record", metavar="POLICY", default="never", help=f"one of {', '.join(RECORD_CHOICES)}"
    )
    add.add_argument(
        "--permission", metavar="CLASS", default="national",
        help=f"how far it may dial: one of {', '.join(PERMISSION_CHOICES)}",
    )  # fmt: skip
    add.set_defaults(handler=cmd_add)

    listing = sub.add_parser("list", help="list extensions with their registered contacts")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=cmd_list)

    for name, handler, text in _SINGLE_NUMBER_COMMANDS:
        parser = sub.add_parser(name, help=text)
        parser.add_argument("number", metavar="NUM")
        parser.set_defaults(handler=handler)

    change = sub.add_parser("set", help="change the name, recording or permission of an extension")
    change.add_argument("number", metavar="NUM")
    change.add_argument("--name", help="display name")
    change.add_argument("--record", metavar="POLICY", help=f"one of {', '.join(RECORD_CHOICES)}")
    change.add_argument(
        "--permission", metavar="CLASS", help=f"one of {', '.join(PERMISSION_CHOICES)}"
    )
    change.set_defaults(handler=cmd_set)

    passwd = sub.add_parser("passwd", help="set a new password for an extension")
    passwd.add_argument("number", metavar="NUM")
    _password_options(passwd)
    passwd.set_defaults(handler=cmd_passwd)


def _password_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--password", metavar="P", help="the SIP password (visible in shell history; see below)"
    )
    group.add_argument("--generate", action="store_true", help="generate one and print it once")
    parser.epilog = (
        "Without --password or --generate the password is asked twice on a terminal, "
        "or read as one line from stdin."
    )


def generate_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(GENERATED_PASSWORD_LENGTH))


def read_password(args: argparse.Namespace) -> str:
    """The new password from the options, a terminal prompt (asked twice) or stdin."""
    if args.password is not None:
        return str(args.password)
    if args.generate:
        return generate_password()
    if sys.stdin.isatty():
        first = getpass.getpass(f"password for extension {args.number}: ")
        if getpass.getpass("repeat the password: ") != first:
            raise UsageError("the two passwords do not match")
        return first
    line = sys.stdin.readline()
    if not line:
        raise UsageError("no password given: use --password P, --generate, or one line on stdin")
    return line.rstrip("\r\n")


def _report_generated(args: argparse.Namespace, password: str) -> None:
    if args.generate:
        print(f"password: {password}")


@with_store
def cmd_add(args: argparse.Namespace, store: Store) -> int:
    _check_number(args.number)
    password = read_password(args)
    extension = store.add_extension(
        args.number,
        password,
        args.name,
        record_policy=args.record,
        permission=args.permission,
    )
    suffix = f" ({extension.name})" if extension.name else ""
    print(f"added extension {extension.number}{suffix}")
    _report_generated(args, password)
    return 0


@with_store
def cmd_passwd(args: argparse.Namespace, store: Store) -> int:
    store.get_extension(args.number)  # fail before prompting for a password
    password = read_password(args)
    store.set_password(args.number, password)
    print(f"changed the password of extension {args.number}")
    _report_generated(args, password)
    return 0


@with_store
def cmd_list(args: argparse.Namespace, store: Store) -> int:
    extensions = store.list_extensions()
    counts = store.active_binding_counts(time.time())
    if args.json:
        print_json([{**e.to_public_dict(), "contacts": counts.get(e.number, 0)}
                    for e in extensions])  # fmt: skip
        return 0
    if not extensions:
        print("no extensions yet; add one with: deskpbx ext add NUM")
        return 0
    rows = [
        [e.number, e.name, "yes" if e.enabled else "no", str(counts.get(e.number, 0)),
         e.record_policy.value]
        for e in extensions
    ]  # fmt: skip
    print(format_table(["NUMBER", "NAME", "ENABLED", "CONTACTS", "RECORD"], rows))
    return 0


@with_store
def cmd_set(args: argparse.Namespace, store: Store) -> int:
    if args.name is None and args.record is None and args.permission is None:
        raise UsageError("nothing to change: give --name, --record or --permission")
    extension = store.update_extension(
        args.number, name=args.name, record_policy=args.record, permission=args.permission
    )
    print(
        f"extension {extension.number}: name {extension.name!r}, "
        f"record {extension.record_policy.value}, permission {extension.permission.value}"
    )
    return 0


@with_store
def cmd_remove(args: argparse.Namespace, store: Store) -> int:
    store.remove_extension(args.number)
    print(f"removed extension {args.number}")
    return 0


@with_store
def cmd_enable(args: argparse.Namespace, store: Store) -> int:
    store.update_extension(args.number, enabled=True)
    print(f"enabled extension {args.number}")
    return 0


@with_store
def cmd_disable(args: argparse.Namespace, store: Store) -> int:
    store.update_extension(args.number, enabled=False)
    print(f"disabled extension {args.number}")
    return 0


def _check_number(number: str) -> None:
    """Validate before prompting, so a typo does not cost two password prompts."""
    from pbx.store.rows import validate_number

    validate_number(number)


_SINGLE_NUMBER_COMMANDS: tuple[tuple[str, Callable[[argparse.Namespace], int], str], ...] = (
    ("remove", cmd_remove, "remove an extension and its registrations"),
    ("enable", cmd_enable, "allow an extension to register and call"),
    ("disable", cmd_disable, "keep an extension but refuse its registrations and calls"),
)
