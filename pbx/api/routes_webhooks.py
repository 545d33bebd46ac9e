"""Webhooks: `/api/v1/webhooks` registers receivers of call events (see pbx.api.webhooks).

The signing secret is returned once, in the 201 answer (generated when the
request gives none), like a token; listings never show it.
"""

from __future__ import annotations

import secrets

from aiohttp import web
from yarl import URL

from pbx.api.body import Fields, json_object
from pbx.api.context import context
from pbx.api.problems import Problem
from pbx.store.api import WEBHOOK_EVENTS, Webhook, validate_events

routes = web.RouteTableDef()

MIN_SECRET = 16


def _check_url(text: str) -> None:
    try:
        url = URL(text)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an absolute http:// or https:// URL")


def _webhook_id(request: web.Request) -> int:
    text = request.match_info["webhook_id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise Problem(404, f"no webhook {text}: list them with GET /api/v1/webhooks")
    return int(text)


@routes.get("/api/v1/webhooks")
async def list_webhooks(request: web.Request) -> web.Response:
    hooks = context(request).store.list_webhooks()
    return web.json_response({"items": [h.to_public_dict() for h in hooks]})


@routes.post("/api/v1/webhooks")
async def create_webhook(request: web.Request) -> web.Response:
    ctx = context(request)
    fields = Fields(await json_object(request), ("url", "secret", "events", "description"))
    url = fields.string("url", required=True, max_length=2048)
    if url is not None:
        try:
            _check_url(url)
        except ValueError as exc:
            fields.error("url", str(exc))
    secret = fields.string("secret", max_length=256)
    if secret is not None and len(secret) < MIN_SECRET:
        fields.error("secret", f"must be at least {MIN_SECRET} characters")
    events = fields.string_list("events") or []
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown:
        fields.error("events", f"unknown event {unknown[0]!r}; use {', '.join(WEBHOOK_EVENTS)}")
    description = fields.string("description", max_length=256) or ""
    fields.done()
    assert url is not None
    secret = secret or secrets.token_hex(32)
    hook: Webhook = ctx.store.add_webhook(
        url, secret, validate_events(events), description, ctx.wall()
    )
    ctx.reload_webhooks()
    body = {**hook.to_public_dict(), "secret": secret}
    return web.json_response(body, status=201, headers={"Location": f"/api/v1/webhooks/{hook.id}"})


@routes.get("/api/v1/webhooks/{webhook_id}")
async def get_webhook(request: web.Request) -> web.Response:
    hook = context(request).store.get_webhook(_webhook_id(request))
    return web.json_response(hook.to_public_dict())


@routes.delete("/api/v1/webhooks/{webhook_id}")
async def delete_webhook(request: web.Request) -> web.Response:
    ctx = context(request)
    ctx.store.remove_webhook(_webhook_id(request))
    ctx.reload_webhooks()
    return web.Response(status=204)
