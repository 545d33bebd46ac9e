"""Trunks, routes, DIDs and ring groups as JSON objects, and CDRs as CSV rows: one shape
for the HTTP API and for `deskpbx ... --json` / `deskpbx cdr --csv`, so scripts read the
same fields from either. A trunk's password never appears: `password_set` says whether
one is stored."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from pbx.store.rows import CDR_COLUMNS, Cdr
from pbx.store.trunks import Did, RingGroup, Route, Trunk

CSV_COLUMNS = tuple(c for c in CDR_COLUMNS if c != "media_stats")
"""The CDR columns of a CSV export (GET /api/v1/cdrs.csv, `deskpbx cdr --csv`)."""
CSV_PAGE = 500
"""CDRs read from the store at a time while exporting."""
CSV_MAX_ROWS = 100_000
"""An export's cap (narrow it with since/until)."""


def trunk_view(trunk: Trunk) -> dict[str, Any]:
    view = asdict(trunk)
    del view["password"]
    view["password_set"] = trunk.password_set
    view["status"] = trunk.status.value
    return view


def route_view(route: Route) -> dict[str, Any]:
    view = asdict(route)
    view.update(patterns=list(route.patterns), trunks=list(route.trunks),
                permission=route.permission.value, strategy=route.strategy.value,
                record_policy=route.record_policy.value)  # fmt: skip
    return view


def did_view(did: Did) -> dict[str, Any]:
    return {"number": did.number, "target_kind": did.target_kind.value, "target": did.target,
            "trunk": did.trunk}  # fmt: skip


def group_view(group: RingGroup) -> dict[str, Any]:
    return {"number": group.number, "name": group.name, "strategy": group.strategy.value,
            "ring_timeout": group.ring_timeout, "members": list(group.members)}  # fmt: skip


def cdr_csv_row(cdr: Cdr) -> list[Any]:
    """One CSV line's fields: X- headers as a JSON object, empty for NULL."""
    row = cdr.to_public_dict()
    row["x_headers"] = json.dumps(cdr.x_headers, sort_keys=True)
    return ["" if row[c] is None else row[c] for c in CSV_COLUMNS]
