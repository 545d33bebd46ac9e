"""Trunks, routes, DIDs and ring groups as JSON objects, one shape for the HTTP API and for
`deskpbx trunk|route|did|group list --json`, so scripts read the same fields from either.
A trunk's password never appears: `password_set` says whether one is stored."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pbx.store.trunks import Did, RingGroup, Route, Trunk


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
