"""Trunks, outbound routes and inbound DIDs under /api/v1, with the CLI's validation.

The store validates (pbx.store.trunks: validate_trunk, add_route, add_did) and
this module only reads the JSON into its row types, so the API and
`deskpbx trunk|route|did` accept and refuse the same things. A trunk's password
is write-only: answers say `password_set`. A route or DID that names a trunk,
extension or ring group that does not exist is 422 on that field (the request
is wrong, the resource is not missing).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pbx.api.body import Fields, json_object
from pbx.api.context import context
from pbx.api.problems import Problem, field_error
from pbx.sip.locate import wants_srv
from pbx.store import InvalidValue
from pbx.store.trunks import Did, Route, TargetKind, Trunk, UnknownItem
from pbx.store.views import did_view, route_view, trunk_view

routes = web.RouteTableDef()

TRUNK_TEXT = ("host", "transport", "domain", "username", "password", "outbound_proxy",
              "caller_id", "prefix", "match_networks")  # fmt: skip
TRUNK_FLAGS = ("register", "enabled", "qualify", "send_pai", "pass_x_headers", "srv")
TRUNK_NUMBERS = {"port": (1, 65535), "expiry": (60, 86400), "max_calls": (0, 10_000)}
TRUNK_FIELDS = ("name", *TRUNK_TEXT, *TRUNK_FLAGS, *TRUNK_NUMBERS)
ROUTE_FIELDS = ("name", "patterns", "trunks", "strip", "prepend", "caller_id", "permission",
                "strategy", "record_policy")  # fmt: skip
DID_FIELDS = ("number", "target_kind", "target", "trunk")


def _store_field(field: str, call: Any, *args: Any) -> Any:
    """Run a store call; InvalidValue or a missing referenced row becomes 422 on `field`."""
    try:
        return call(*args)
    except InvalidValue as exc:
        raise field_error(field, str(exc)) from None
    except UnknownItem as exc:
        raise field_error(field, str(exc)) from None


def _trunk_values(fields: Fields) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in TRUNK_TEXT:
        values[name] = fields.string(name)
    for name in TRUNK_FLAGS:
        values[name] = fields.boolean(name)
    for name, (low, high) in TRUNK_NUMBERS.items():
        values[name] = fields.integer(name, low, high)
    return {k: v for k, v in values.items() if v is not None}


# -- trunks ---------------------------------------------------------------------------------


@routes.get("/api/v1/trunks")
async def list_trunks(request: web.Request) -> web.Response:
    trunks = context(request).store.list_trunks()
    return web.json_response({"items": [trunk_view(t) for t in trunks]})


@routes.post("/api/v1/trunks")
async def create_trunk(request: web.Request) -> web.Response:
    ctx = context(request)
    fields = Fields(await json_object(request), TRUNK_FIELDS)
    name = fields.string("name", required=True, max_length=32)
    values = _trunk_values(fields)
    if "host" not in values and all(e["field"] != "host" for e in fields.errors):
        fields.error("host", "required")
    fields.done()
    if "srv" not in values and "port" not in values:  # RFC 3263: no port, look SRV up
        values["srv"] = wants_srv(values.get("host", ""), port_given=False)
    trunk = ctx.store.add_trunk(Trunk(name=name or "", created=ctx.wall(), **values))
    return web.json_response(trunk_view(trunk), status=201,
                             headers={"Location": f"/api/v1/trunks/{trunk.name}"})  # fmt: skip


@routes.get("/api/v1/trunks/{name}")
async def get_trunk(request: web.Request) -> web.Response:
    trunk = context(request).store.get_trunk(request.match_info["name"])
    return web.json_response(trunk_view(trunk))


@routes.patch("/api/v1/trunks/{name}")
async def update_trunk(request: web.Request) -> web.Response:
    ctx = context(request)
    name = request.match_info["name"]
    fields = Fields(await json_object(request), TRUNK_FIELDS[1:])
    values = _trunk_values(fields)
    fields.done()
    ctx.store.get_trunk(name)
    trunk = ctx.store.update_trunk(name, **values) if values else ctx.store.get_trunk(name)
    return web.json_response(trunk_view(trunk))


@routes.delete("/api/v1/trunks/{name}")
async def delete_trunk(request: web.Request) -> web.Response:
    context(request).store.remove_trunk(request.match_info["name"])
    return web.Response(status=204)


# -- outbound routes ------------------------------------------------------------------------


def _find_route(request: web.Request) -> Route:
    name = request.match_info["name"]
    for route in context(request).store.list_routes():
        if route.name == name:
            return route
    raise Problem(404, f"no route {name}: list them with GET /api/v1/routes")


@routes.get("/api/v1/routes")
async def list_routes(request: web.Request) -> web.Response:
    items = [route_view(r) for r in context(request).store.list_routes()]
    return web.json_response({"items": items})


@routes.post("/api/v1/routes")
async def create_route(request: web.Request) -> web.Response:
    """Append a route (tried after the existing ones; PATCH its position to move it)."""
    from pbx.routing import PatternError, compile_pattern

    ctx = context(request)
    fields = Fields(await json_object(request), ROUTE_FIELDS)
    name = fields.string("name", required=True, max_length=32)
    patterns = fields.string_list("patterns")
    trunks = fields.string_list("trunks")
    for what, value in (("patterns", patterns), ("trunks", trunks)):
        if not value:
            fields.error(what, "required: a non-empty array of strings")
    for pattern in patterns or []:
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            fields.error("patterns", str(exc))
    optional: dict[str, Any] = {
        "strip": fields.integer("strip", 0, 32),
        "prepend": fields.string("prepend", max_length=32),
        "caller_id": fields.string("caller_id", max_length=64),
        "permission": fields.string("permission"),
        "strategy": fields.string("strategy"),
        "record_policy": fields.string("record_policy"),
    }
    fields.done()
    route = Route(name=name or "", patterns=tuple(patterns or ()), trunks=tuple(trunks or ()),
                  **{k: v for k, v in optional.items() if v is not None})  # fmt: skip
    created = _store_field("trunks", ctx.store.add_route, route)
    return web.json_response(route_view(created), status=201,
                             headers={"Location": f"/api/v1/routes/{created.name}"})  # fmt: skip


@routes.get("/api/v1/routes/{name}")
async def get_route(request: web.Request) -> web.Response:
    return web.json_response(route_view(_find_route(request)))


@routes.patch("/api/v1/routes/{name}")
async def move_route(request: web.Request) -> web.Response:
    """Only the position changes in place (1 = tried first); other changes: delete and add."""
    ctx = context(request)
    route = _find_route(request)
    fields = Fields(await json_object(request), ("position",))
    position = fields.integer("position", 1, 10_000)
    if position is None and not fields.errors:
        fields.error("position", "required")
    fields.done()
    ordered = ctx.store.move_route(route.name, position or 1)
    moved = next(r for r in ordered if r.name == route.name)
    return web.json_response(route_view(moved))


@routes.delete("/api/v1/routes/{name}")
async def delete_route(request: web.Request) -> web.Response:
    context(request).store.remove_route(request.match_info["name"])
    return web.Response(status=204)


# -- inbound DIDs ---------------------------------------------------------------------------


@routes.get("/api/v1/dids")
async def list_dids(request: web.Request) -> web.Response:
    return web.json_response({"items": [did_view(d) for d in context(request).store.list_dids()]})


@routes.post("/api/v1/dids")
async def create_did(request: web.Request) -> web.Response:
    ctx = context(request)
    fields = Fields(await json_object(request), DID_FIELDS)
    number = fields.string("number", required=True, max_length=21)
    kind = fields.string("target_kind", required=True)
    target = fields.string("target", max_length=32) or ""
    trunk = fields.string("trunk", max_length=32)
    choices = [k.value for k in TargetKind]
    if kind is not None and kind not in choices:
        fields.error("target_kind", f"must be one of: {', '.join(choices)}")
    if kind in ("extension", "group") and not target:
        fields.error("target", f"required when target_kind is {kind}")
    fields.done()
    did = Did(number or "", TargetKind(kind), target, trunk)
    try:
        created = ctx.store.add_did(did)
    except InvalidValue as exc:
        raise field_error("number", str(exc)) from None
    except UnknownItem as exc:
        raise field_error(
            "trunk" if str(exc).startswith("no trunk") else "target", str(exc)
        ) from None
    return web.json_response(did_view(created), status=201,
                             headers={"Location": f"/api/v1/dids/{created.number}"})  # fmt: skip


@routes.get("/api/v1/dids/{number}")
async def get_did(request: web.Request) -> web.Response:
    number = request.match_info["number"]
    did = context(request).store.find_did(number)
    if did is None:
        raise Problem(404, f"no DID {number}: list them with GET /api/v1/dids")
    return web.json_response(did_view(did))


@routes.delete("/api/v1/dids/{number}")
async def delete_did(request: web.Request) -> web.Response:
    context(request).store.remove_did(request.match_info["number"])
    return web.Response(status=204)
