"""Status: `GET /api/v1/status` (with trunk states), `GET /api/v1/registrations`, `/metrics`."""

from __future__ import annotations

from aiohttp import web

from pbx.api.context import context
from pbx.api.metrics import CONTENT_TYPE, live_relay_counts
from pbx.outbound import OutboundDialer

routes = web.RouteTableDef()


@routes.get("/api/v1/status")
async def get_status(request: web.Request) -> web.Response:
    ctx = context(request)
    status = dict(ctx.pbx.status())
    locator = getattr(ctx.pbx, "locator", None)
    status["trunks"] = [
        {"name": t.name, "enabled": t.enabled, "register": t.register, "status": t.status.value,
         "status_at": t.status_at,
         "servers": locator.servers(OutboundDialer.next_hop(t)) if locator is not None else []}
        for t in ctx.store.list_trunks()
    ]  # fmt: skip
    return web.json_response(status)


@routes.get("/api/v1/registrations")
async def get_registrations(request: web.Request) -> web.Response:
    """Live bindings of the location service (RFC 3261 §10.3), one per registered contact."""
    ctx = context(request)
    items = [
        {
            "extension": b.extension,
            "contact": b.contact,
            "source": f"{b.source_host}:{b.source_port}",
            "transport": b.transport,
            "expires_at": b.expires_at,
            "user_agent": b.user_agent,
            "reachable": b.reachable,
        }
        for b in ctx.store.active_bindings(ctx.wall())
    ]
    return web.json_response({"items": items})


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    ctx = context(request)
    b2bua = getattr(ctx.pbx, "b2bua", None)
    text = ctx.metrics.render(
        ctx.pbx.status(), live_relay_counts(getattr(b2bua, "calls", {})), ctx.webhooks.stats
    )
    response = web.Response(text=text)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response
