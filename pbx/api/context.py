"""What every route handler reaches through `request.app[CONTEXT]`: the PBX and API services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from pbx.api.events import EventBus
from pbx.api.metrics import Metrics
from pbx.api.webhooks import WebhookDispatcher
from pbx.store import Store


@dataclass
class ApiContext:
    """`pbx` is a `pbx.server.Pbx` (or a test double with store, b2bua, status(), config)."""

    pbx: Any
    store: Store
    bus: EventBus
    webhooks: WebhookDispatcher
    metrics: Metrics
    wall: Callable[[], float]
    data_dir: Path
    websockets: set[web.WebSocketResponse] = field(default_factory=set)

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    def reload_webhooks(self) -> None:
        self.webhooks.set_webhooks(self.store.list_webhooks())


CONTEXT: web.AppKey[ApiContext] = web.AppKey("deskpbx", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]
