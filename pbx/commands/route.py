"""`deskpbx route ...`: ordered outbound routes (add, list, remove, move).

A route matches dialled digits with FreePBX dial patterns (`9|NXXNXXXXXX`,
X/Z/N/./!, [1-5]) or `re:REGEX`, strips and prepends digits, may override the
caller ID, requires a permission class, and names its trunks in failover order
with a strategy (priority, round-robin, least-busy). Routes are tried in order;
`move NAME POS` changes that order. See pbx.routing.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pbx.commands import UsageError
from pbx.commands.ext import PERMISSION_CHOICES, format_table, print_json, with_store

if TYPE_CHECKING:
    from pbx.store import Store

STRATEGY_CHOICES = ("priority", "round-robin", "least-busy")


def register(subparsers: Any) -> None:
    route = subparsers.add_parser("route", help="manage outbound routes")
    sub = route.add_subparsers(dest="route_command", metavar="SUBCOMMAND", required=True)

    add = sub.add_parser("add", help="add a route after the existing ones")
    add.add_argument("name", metavar="NAME")
    add.add_argument(
        "--pattern",
        action="append",
        required=True,
        metavar="P",
        help="dial pattern such as 9|NXXNXXXXXX, or re:REGEX (repeatable)",
    )
    add.add_argument(
        "--trunk",
        action="append",
        required=True,
        metavar="T",
        help="a trunk, in failover order (repeatable)",
    )
    add.add_argument("--strip", type=int, default=0, help="digits to strip after the pattern")
    add.add_argument("--prepend", default="", help="digits to prepend after stripping")
    add.add_argument("--caller-id", default="", help="caller ID presented instead of the trunk's")
    add.add_argument(
        "--permission",
        default="national",
        help=f"class a caller needs: one of {', '.join(PERMISSION_CHOICES)}",
    )
    add.add_argument("--strategy", default="priority", help=", ".join(STRATEGY_CHOICES))
    add.add_argument(
        "--record",
        default="never",
        metavar="POLICY",
        help="record calls on this route: always, never or on_demand (the strongest of the "
        "route's and the caller's policy wins)",
    )
    add.set_defaults(handler=cmd_add)  # fmt: skip

    listing = sub.add_parser("list", help="list routes in the order they are tried")
    listing.add_argument("--json", action="store_true", help="print a JSON array (as the API)")
    listing.set_defaults(handler=cmd_list)

    remove = sub.add_parser("remove", help="remove a route")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=cmd_remove)

    move = sub.add_parser("move", help="move a route to a position (1 = tried first)")
    move.add_argument("name", metavar="NAME")
    move.add_argument("position", type=int, metavar="POS")
    move.set_defaults(handler=cmd_move)


@with_store
def cmd_add(args: argparse.Namespace, store: Store) -> int:
    from pbx.routing import PatternError, compile_pattern
    from pbx.store.trunks import Route

    for pattern in args.pattern:
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            raise UsageError(str(exc)) from None
    route = store.add_route(
        Route(
            name=args.name, patterns=tuple(args.pattern), trunks=tuple(args.trunk),
            strip=args.strip, prepend=args.prepend, caller_id=args.caller_id,
            permission=args.permission, strategy=args.strategy, record_policy=args.record,
        )
    )  # fmt: skip
    print(f"added route {route.name} at position {route.position}")
    return 0


@with_store
def cmd_list(args: argparse.Namespace, store: Store) -> int:
    routes = store.list_routes()
    if args.json:
        from pbx.store.views import route_view

        print_json([route_view(item) for item in routes])
        return 0
    if not routes:
        print("no routes yet; add one with: deskpbx route add NAME --pattern P --trunk T")
        return 0
    rows = [
        [str(r.position), r.name, " ".join(r.patterns), str(r.strip), r.prepend or "-",
         r.caller_id or "-", r.permission.value, r.strategy.value, ",".join(r.trunks) or "-"]
        for r in routes
    ]  # fmt: skip
    headers = ["POS", "NAME", "PATTERNS", "STRIP", "PREPEND", "CALLER-ID", "PERMISSION",
               "STRATEGY", "TRUNKS"]  # fmt: skip
    print(format_table(headers, rows))
    return 0


@with_store
def cmd_remove(args: argparse.Namespace, store: Store) -> int:
    store.remove_route(args.name)
    print(f"removed route {args.name}")
    return 0


@with_store
def cmd_move(args: argparse.Namespace, store: Store) -> int:
    if args.position < 1:
        raise UsageError("position must be 1 or more")
    routes = store.move_route(args.name, args.position)
    print("routes now tried in this order: " + ", ".join(r.name for r in routes))
    return 0
