"""`deskpbx token ...`: bearer tokens for the HTTP API.

`token create NAME` prints a new token once; the store keeps only its SHA-256,
so a lost token cannot be shown again: revoke it and create another.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pbx.commands.ext import format_table, with_store

if TYPE_CHECKING:
    from pbx.store import Store


def register(subparsers: Any) -> None:
    token = subparsers.add_parser("token", help="manage HTTP API tokens")
    sub = token.add_subparsers(dest="token_command", metavar="SUBCOMMAND", required=True)
    create = sub.add_parser("create", help="create a token and print it once")
    create.add_argument("name", metavar="NAME", help="who uses it, e.g. crm or helpdesk")
    create.set_defaults(handler=cmd_create)
    listing = sub.add_parser("list", help="list token names, creation and last use")
    listing.set_defaults(handler=cmd_list)
    revoke = sub.add_parser("revoke", help="revoke a token: requests with it get 401")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(handler=cmd_revoke)


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S") if epoch else "never"


@with_store
def cmd_create(args: argparse.Namespace, store: Store) -> int:
    from pbx.api.auth import new_token, token_hash

    token = new_token()
    store.add_api_token(args.name, token_hash(token), time.time())
    print(token)
    print(f"created API token {args.name}; it is shown only now, keep it safe")
    return 0


@with_store
def cmd_list(args: argparse.Namespace, store: Store) -> int:
    tokens = store.list_api_tokens()
    if not tokens:
        print("no API tokens yet; create one with: deskpbx token create NAME")
        return 0
    rows = [[t.name, _when(t.created), _when(t.last_used)] for t in tokens]
    print(format_table(["NAME", "CREATED", "LAST USED"], rows))
    return 0


@with_store
def cmd_revoke(args: argparse.Namespace, store: Store) -> int:
    store.revoke_api_token(args.name)
    print(f"revoked API token {args.name}")
    return 0
