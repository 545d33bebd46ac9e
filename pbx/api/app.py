"""The aiohttp application and its server, run in the PBX's own event loop.

`build_app(ctx)` assembles middlewares (problem+json outermost, then bearer
auth) and the route tables listed in ROUTE_MODULES: a new resource (ring groups,
say) is one more `routes_<name>.py` with a `routes` RouteTableDef,
one entry here and its paths in openapi.py.

Wiring (pbx/server.py, by the lead), once `Pbx.start()` has built the B2BUA:
    self.api = await start_api(self, host, port)      # `serve --http HOST:PORT`
    ...
    await self.api.close()       # in Pbx.aclose(), after b2bua.aclose() (so the hangups of
                                 # the shutdown reach webhooks; close drains them for up to
                                 # 2 s) and before the store is closed
`start_api` connects the call-event source to the B2BUA (see events.CallEventSource).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from pbx.api.auth import auth_middleware
from pbx.api.context import CONTEXT, ApiContext
from pbx.api.events import CallEventSource, EventBus
from pbx.api.metrics import Metrics
from pbx.api.problems import problem_middleware
from pbx.api.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
ROUTE_MODULES = (
    "openapi", "routes_status", "routes_extensions", "routes_cdrs", "routes_calls",
    "routes_config", "routes_webhooks", "routes_events", "routes_bans",
)  # fmt: skip
CLIENT_MAX_SIZE = 64 * 1024


def parse_http_listen(text: str) -> tuple[str, int]:
    """`serve --http` value: 'HOST:PORT', '[::1]:8080', or a bare port (on 127.0.0.1).

    The API defaults to loopback: it can originate calls, so exposing it is a choice
    the administrator makes by naming an address. ConfigError on bad input."""
    from pbx.config import parse_host_port

    text = text.strip()
    if text.isdigit() or text.startswith(":"):
        text = f"{DEFAULT_HOST}:{text.removeprefix(':')}"
    return parse_host_port(text, DEFAULT_PORT)


def build_app(ctx: ApiContext) -> web.Application:
    app = web.Application(
        middlewares=[problem_middleware, auth_middleware(ctx.store, ctx.wall)],
        client_max_size=CLIENT_MAX_SIZE,
    )
    app[CONTEXT] = ctx
    for name in ROUTE_MODULES:
        app.add_routes(importlib.import_module(f"pbx.api.{name}").routes)
    app.on_shutdown.append(_close_websockets)
    return app


async def _close_websockets(app: web.Application) -> None:
    for ws in list(app[CONTEXT].websockets):
        await ws.close(code=1001, message=b"DeskPBX stopping")


def make_context(
    pbx: Any,
    *,
    bus: EventBus | None = None,
    webhooks: WebhookDispatcher | None = None,
    wall: Callable[[], float] | None = None,
) -> ApiContext:
    """The API's services around a PBX (or a test double with store, b2bua, status(), config)."""
    bus = bus or getattr(pbx, "events", None) or EventBus()
    ctx = ApiContext(
        pbx=pbx,
        store=pbx.store,
        bus=bus,
        webhooks=webhooks or WebhookDispatcher(),
        metrics=Metrics(),
        wall=wall or getattr(pbx, "wall", None) or time.time,
        data_dir=Path(pbx.config.data_dir),
    )
    bus.subscribe(ctx.webhooks.deliver)
    bus.subscribe(ctx.metrics.on_event)
    return ctx


class ApiServer:
    """A running API: `url`, `port`, the event bus to publish on, `await close()`."""

    def __init__(self, ctx: ApiContext, runner: web.AppRunner, host: str, port: int) -> None:
        self.ctx = ctx
        self.runner = runner
        self.host = host
        self.port = port

    @property
    def bus(self) -> EventBus:
        return self.ctx.bus

    @property
    def metrics(self) -> Metrics:
        return self.ctx.metrics

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.ctx.webhooks.drain(2.0)
        await self.ctx.webhooks.close()


async def start_api(
    pbx: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    bus: EventBus | None = None,
    webhooks: WebhookDispatcher | None = None,
) -> ApiServer:
    """Serve the API for a started `pbx` on host:port (port 0 picks a free one)."""
    ctx = make_context(pbx, bus=bus, webhooks=webhooks)
    b2bua = getattr(pbx, "b2bua", None)
    if b2bua is not None:
        source = CallEventSource(ctx.bus, ctx.wall)
        source.attach(b2bua, getattr(pbx, "recordings", None))
    ctx.reload_webhooks()
    runner = web.AppRunner(build_app(ctx), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(exc.errno, f"cannot serve the HTTP API on {host}:{port}: {exc}") from exc
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    log.info("HTTP API on http://%s:%d/api/v1", host, bound)
    return ApiServer(ctx, runner, host, bound)
