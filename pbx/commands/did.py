"""`deskpbx did ...`: inbound numbers (DIDs) and where they ring (see pbx.inbound).

A DID rings an extension, a ring group, or the desktop softphone; `--trunk`
limits it to calls from one trunk. `s` is the catch-all for any other number.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pbx.commands.ext import format_table, print_json, with_store

if TYPE_CHECKING:
    from pbx.store import Store


def register(subparsers: Any) -> None:
    did = subparsers.add_parser("did", help="manage inbound numbers (DIDs)")
    sub = did.add_subparsers(dest="did_command", metavar="SUBCOMMAND", required=True)

    add = sub.add_parser("add", help="route an inbound number")
    add.add_argument("number", metavar="NUMBER", help="digits with an optional +, or s for any")
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--extension", metavar="NUM", help="ring this extension")
    target.add_argument("--group", metavar="NUM", help="ring this ring group")
    target.add_argument("--softphone", action="store_true", help="ring the desktop softphone")
    add.add_argument("--trunk", metavar="NAME", help="only for calls from this trunk")
    add.set_defaults(handler=cmd_add)

    listing = sub.add_parser("list", help="list inbound numbers")
    listing.add_argument("--json", action="store_true", help="print a JSON array (as the API)")
    listing.set_defaults(handler=cmd_list)

    remove = sub.add_parser("remove", help="remove an inbound number")
    remove.add_argument("number", metavar="NUMBER")
    remove.set_defaults(handler=cmd_remove)


@with_store
def cmd_add(args: argparse.Namespace, store: Store) -> int:
    from pbx.store.trunks import Did, TargetKind

    if args.extension:
        kind, target = TargetKind.EXTENSION, args.extension
    elif args.group:
        kind, target = TargetKind.GROUP, args.group
    else:
        kind, target = TargetKind.SOFTPHONE, ""
    did = store.add_did(Did(args.number, kind, target, args.trunk))
    print(f"inbound {did.number} now rings {_target(kind.value, target)}")
    return 0


def _target(kind: str, target: str) -> str:
    return {"extension": f"extension {target}", "group": f"ring group {target}"}.get(
        kind, "the desktop softphone"
    )


@with_store
def cmd_list(args: argparse.Namespace, store: Store) -> int:
    dids = store.list_dids()
    if args.json:
        from pbx.store.views import did_view

        print_json([did_view(item) for item in dids])
        return 0
    if not dids:
        print("no inbound numbers yet; add one with: deskpbx did add NUMBER --extension NUM")
        return 0
    rows = [[d.number, _target(d.target_kind.value, d.target), d.trunk or "any"] for d in dids]
    print(format_table(["DID", "RINGS", "TRUNK"], rows))
    return 0


@with_store
def cmd_remove(args: argparse.Namespace, store: Store) -> int:
    store.remove_did(args.number)
    print(f"removed inbound number {args.number}")
    return 0
