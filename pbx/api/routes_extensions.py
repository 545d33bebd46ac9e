"""Extensions CRUD under /api/v1/extensions, with the CLI's validation (the store's validators).

A password is never returned except when the PBX generated it for this
request (`"password"` in the 201 answer), as `deskpbx ext add --generate` prints it once.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pbx.api.body import Fields, json_object
from pbx.api.context import ApiContext, context
from pbx.commands.ext import generate_password
from pbx.store import Extension, PermissionClass, RecordPolicy
from pbx.store.rows import parse_enum, validate_number, validate_password

routes = web.RouteTableDef()

CREATE_FIELDS = ("number", "password", "name", "enabled", "record_policy", "permission")
UPDATE_FIELDS = ("password", "name", "enabled", "record_policy", "permission")


def _public(ctx: ApiContext, extension: Extension, counts: dict[str, int]) -> dict[str, Any]:
    return {**extension.to_public_dict(), "contacts": counts.get(extension.number, 0)}


def _read_common(fields: Fields) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": fields.string("name", max_length=128),
        "enabled": fields.boolean("enabled"),
        "record_policy": fields.string("record_policy"),
        "permission": fields.string("permission"),
    }
    fields.check("record_policy", values["record_policy"],
                 lambda v: parse_enum(RecordPolicy, v, "record policy"))  # fmt: skip
    fields.check("permission", values["permission"],
                 lambda v: parse_enum(PermissionClass, v, "permission class"))  # fmt: skip
    return values


def _number(request: web.Request) -> str:
    number = request.match_info["number"]
    validate_number(number)  # InvalidValue -> 422 via the problem middleware
    return number


@routes.get("/api/v1/extensions")
async def list_extensions(request: web.Request) -> web.Response:
    ctx = context(request)
    counts = ctx.store.active_binding_counts(ctx.wall())
    items = [_public(ctx, e, counts) for e in ctx.store.list_extensions()]
    return web.json_response({"items": items})


@routes.post("/api/v1/extensions")
async def create_extension(request: web.Request) -> web.Response:
    ctx = context(request)
    fields = Fields(await json_object(request), CREATE_FIELDS)
    number = fields.check("number", fields.string("number", required=True), validate_number)
    password = fields.string("password")
    values = _read_common(fields)
    if number is not None and password is not None:
        fields.check("password", password, lambda p: validate_password(number, p))
    fields.done()
    generated = password is None
    password = password or generate_password()
    extension = ctx.store.add_extension(
        number,
        password,
        values["name"] or "",
        enabled=True if values["enabled"] is None else values["enabled"],
        record_policy=values["record_policy"] or RecordPolicy.NEVER,
        permission=values["permission"] or PermissionClass.NATIONAL,
        now=ctx.wall(),
    )
    body = _public(ctx, extension, {})
    if generated:
        body["password"] = password
    location = f"/api/v1/extensions/{extension.number}"
    return web.json_response(body, status=201, headers={"Location": location})


@routes.get("/api/v1/extensions/{number}")
async def get_extension(request: web.Request) -> web.Response:
    ctx = context(request)
    extension = ctx.store.get_extension(_number(request))
    return web.json_response(_public(ctx, extension, ctx.store.active_binding_counts(ctx.wall())))


@routes.patch("/api/v1/extensions/{number}")
async def update_extension(request: web.Request) -> web.Response:
    ctx = context(request)
    number = _number(request)
    fields = Fields(await json_object(request), UPDATE_FIELDS)
    password = fields.string("password")
    values = _read_common(fields)
    fields.check("password", password, lambda p: validate_password(number, p))
    fields.done()
    ctx.store.get_extension(number)
    if password is not None:
        ctx.store.set_password(number, password)
    extension = ctx.store.update_extension(number, **values)
    return web.json_response(_public(ctx, extension, ctx.store.active_binding_counts(ctx.wall())))


@routes.delete("/api/v1/extensions/{number}")
async def delete_extension(request: web.Request) -> web.Response:
    context(request).store.remove_extension(_number(request))
    return web.Response(status=204)
