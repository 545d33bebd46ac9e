"""`deskpbx group ...`: ring groups, rung all at once or in order (see pbx.inbound)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pbx.commands.ext import format_table, print_json, with_store

if TYPE_CHECKING:
    from pbx.store import Store


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("group", help="manage ring groups")
    sub = group.add_subparsers(dest="group_command", metavar="SUBCOMMAND", required=True)

    add = sub.add_parser("add", help="add a ring group")
    add.add_argument("number", metavar="NUM", help="the group's own number, 2 to 10 digits")
    add.add_argument("members", nargs="+", metavar="EXT", help="member extensions, in order")
    add.add_argument("--name", default="")
    add.add_argument("--strategy", default="all", help="all (at once) or order (one by one)")
    add.add_argument("--ring-timeout", type=int, default=20, metavar="S",
                     help="seconds the group (or, in order, each member) rings")  # fmt: skip
    add.set_defaults(handler=cmd_add)

    listing = sub.add_parser("list", help="list ring groups")
    listing.add_argument("--json", action="store_true", help="print a JSON array (as the API)")
    listing.set_defaults(handler=cmd_list)

    remove = sub.add_parser("remove", help="remove a ring group (and DIDs that ring it)")
    remove.add_argument("number", metavar="NUM")
    remove.set_defaults(handler=cmd_remove)


@with_store
def cmd_add(args: argparse.Namespace, store: Store) -> int:
    from pbx.store.trunks import RingGroup

    group = store.add_group(
        RingGroup(args.number, tuple(args.members), args.name, args.strategy, args.ring_timeout)
    )
    how = "all at once" if group.strategy.value == "all" else "one after another"
    print(f"added ring group {group.number}: {', '.join(group.members)} ring {how}")
    return 0


@with_store
def cmd_list(args: argparse.Namespace, store: Store) -> int:
    groups = store.list_groups()
    if args.json:
        from pbx.store.views import group_view

        print_json([group_view(item) for item in groups])
        return 0
    if not groups:
        print("no ring groups yet; add one with: deskpbx group add NUM EXT EXT ...")
        return 0
    rows = [[g.number, g.name or "-", g.strategy.value, str(g.ring_timeout), ",".join(g.members)]
            for g in groups]  # fmt: skip
    print(format_table(["NUMBER", "NAME", "STRATEGY", "TIMEOUT", "MEMBERS"], rows))
    return 0


@with_store
def cmd_remove(args: argparse.Namespace, store: Store) -> int:
    store.remove_group(args.number)
    print(f"removed ring group {args.number}")
    return 0
