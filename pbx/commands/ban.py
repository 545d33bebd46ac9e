"""`deskpbx ban ...`: the addresses banned for password guessing (pbx.auth_ban).

Bans live in the running PBX's memory and in the database (pbx.store.bans); these
commands read and change the database, and the running PBX re-reads it every minute,
so `ban lift` takes effect within one (`DELETE /api/v1/bans/{address}` at once).
"""

from __future__ import annotations

import argparse
import ipaddress
import time
from typing import TYPE_CHECKING, Any

from pbx.commands import UsageError
from pbx.commands.ext import format_table, print_json, with_store

if TYPE_CHECKING:
    from pbx.store import Store


def register(subparsers: Any) -> None:
    ban = subparsers.add_parser("ban", help="addresses banned for password guessing")
    sub = ban.add_subparsers(dest="ban_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="banned addresses and the time each ban has left")
    listing.add_argument("--json", action="store_true", help="print a JSON array (as the API)")
    listing.set_defaults(handler=cmd_list)
    lift = sub.add_parser("lift", help="end an address's ban (the running PBX: within 60 s)")
    lift.add_argument("address", metavar="ADDRESS")
    lift.set_defaults(handler=cmd_lift)


@with_store
def cmd_list(args: argparse.Namespace, store: Store) -> int:
    now = time.time()
    bans = store.active_bans(now)
    if args.json:
        print_json([{"address": a, "seconds_left": round(u - now, 1)} for a, u in bans.items()])
        return 0
    if not bans:
        print("no address is banned")
        return 0
    rows = [[address, f"{until - now:.0f} s"] for address, until in bans.items()]
    print(format_table(["ADDRESS", "LEFT"], rows))
    return 0


@with_store
def cmd_lift(args: argparse.Namespace, store: Store) -> int:
    try:
        address = str(ipaddress.ip_address(args.address.strip("[]")))
    except ValueError:
        raise UsageError(f"{args.address!r} is not an IP address") from None
    if not store.delete_ban(address):
        raise UsageError(f"{address} is not banned")
    print(f"lifted the ban of {address}; a running PBX lets it in within a minute")
    return 0
