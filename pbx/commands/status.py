"""`deskpbx status`: whether the PBX runs, and how the office's phones, trunks, bans and
today's calls stand, read from the database (no HTTP API token needed).

The running PBX writes a heartbeat into the database at start and every minute
(pbx.server) and clears it when it stops; a heartbeat older than HEARTBEAT_STALE seconds
means a PBX that ended without stopping (killed, or the machine went down).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pbx.commands.ext import print_json, with_store

if TYPE_CHECKING:
    from pbx.store import Store

HEARTBEAT_STALE = 150.0
"""Seconds after the last heartbeat (written every 60 s) when the PBX counts as gone."""


def register(subparsers: Any) -> None:
    status = subparsers.add_parser(
        "status", help="is the PBX running; phones, trunks, bans and today's calls"
    )
    status.add_argument("--json", action="store_true", help="print a JSON object")
    status.set_defaults(handler=cmd_status)


def gather(store: Store, now: float) -> dict[str, Any]:
    from pbx.config import HEARTBEAT_SETTING
    from pbx.store.cdrs import MAX_CDR_LIMIT

    text = store.get_setting(HEARTBEAT_SETTING) or ""
    beat = json.loads(text) if text else None
    running = beat is not None and now - float(beat["seen"]) < HEARTBEAT_STALE
    extensions = store.list_extensions()
    counts = store.active_binding_counts(now)
    midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    today = store.query_cdrs(limit=MAX_CDR_LIMIT, since=midnight.timestamp())
    return {
        "running": running,
        "heartbeat": beat,
        "extensions": len(extensions),
        "extensions_registered": sum(1 for e in extensions if counts.get(e.number)),
        "contacts": sum(counts.values()),
        "trunks": [
            {
                "name": t.name,
                "enabled": t.enabled,
                "status": t.status.value,
                "status_at": t.status_at,
            }
            for t in store.list_trunks()
        ],  # fmt: skip
        "bans": {address: round(until - now) for address, until in store.active_bans(now).items()},
        "calls_today": dict(Counter(c.disposition.value for c in today)),
    }


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def describe(state: dict[str, Any]) -> list[str]:
    beat = state["heartbeat"]
    if state["running"]:
        api = f"; HTTP API on {beat['http']}" if beat.get("http") else ""
        lines = [f"DeskPBX {beat['version']}: running (pid {beat['pid']}, since "
                 f"{_when(beat['since'])}), SIP on {beat['sip']}{api}"]  # fmt: skip
    elif beat is not None:
        lines = [f"DeskPBX: not running: its last sign of life (pid {beat['pid']}) was "
                 f"{_when(beat['seen'])}, and it did not stop cleanly"]  # fmt: skip
    else:
        lines = ["DeskPBX: not running (start it with: deskpbx serve)"]
    lines.append(f"Extensions: {state['extensions']}, {state['extensions_registered']} with a "
                 f"registered phone ({state['contacts']} contacts)")  # fmt: skip
    trunks = [f"{t['name']} {t['status'] if t['enabled'] else 'disabled'}"
              for t in state["trunks"]]  # fmt: skip
    lines.append(f"Trunks: {', '.join(trunks) if trunks else 'none'}")
    bans = [f"{address} ({left // 60} min left)" for address, left in state["bans"].items()]
    lines.append(f"Banned: {', '.join(bans) if bans else 'nobody'}")
    calls = state["calls_today"]
    detail = ", ".join(f"{count} {kind}" for kind, count in sorted(calls.items()))
    lines.append(f"Calls today: {sum(calls.values())}" + (f" ({detail})" if detail else ""))
    return lines


@with_store
def cmd_status(args: argparse.Namespace, store: Store) -> int:
    now = time.time()
    state = gather(store, now)
    if args.json:
        print_json(state)
    else:
        print("\n".join(describe(state)))
    return 0
