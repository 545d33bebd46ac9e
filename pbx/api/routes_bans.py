"""Addresses banned for guessing passwords (pbx.auth_ban): list them, lift a ban.

A ban ends by itself after `serve --auth-ban-seconds`; lifting one is for the office whose
own public address got banned because one phone had a wrong password.
"""

from __future__ import annotations

from aiohttp import web

from pbx.api.context import context
from pbx.api.problems import Problem

routes = web.RouteTableDef()


@routes.get("/api/v1/bans")
async def list_bans(request: web.Request) -> web.Response:
    pbx = context(request).pbx
    active = sorted(pbx.bans.active(pbx.monotonic()).items())
    items = [{"address": host, "remaining": round(left, 1)} for host, left in active]
    return web.json_response({"items": items})


@routes.delete("/api/v1/bans/{address}")
async def lift_ban(request: web.Request) -> web.Response:
    address = request.match_info["address"]
    if not context(request).pbx.bans.lift(address):
        raise Problem(404, f"{address} is not banned")
    return web.Response(status=204)
