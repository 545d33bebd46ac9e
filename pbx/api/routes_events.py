"""`GET /api/v1/events`: the call events as a WebSocket stream (RFC 6455).

Each message is one JSON event, the same body a webhook receives. A client
has a bounded queue; a client that does not read fast enough loses events
(counted in `dropped` on close) rather than slowing the PBX. Optional
`?types=call.ended,call.answered` picks event types.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import WSMsgType, web

from pbx.api.context import context
from pbx.api.events import CallEvent, event_to_json
from pbx.api.problems import Problem, field_error
from pbx.store.api import WEBHOOK_EVENTS

routes = web.RouteTableDef()

CLIENT_QUEUE = 256
HEARTBEAT = 30.0
MAX_CLIENTS = 64


def _types(request: web.Request) -> frozenset[str]:
    text = request.query.get("types", "")
    types = frozenset(t.strip() for t in text.split(",") if t.strip())
    unknown = sorted(types - set(WEBHOOK_EVENTS))
    if unknown:
        raise field_error("types", f"unknown event {unknown[0]!r}; use {', '.join(WEBHOOK_EVENTS)}")
    return types


@routes.get("/api/v1/events")
async def events(request: web.Request) -> web.WebSocketResponse:
    ctx = context(request)
    wanted = _types(request)
    if len(ctx.websockets) >= MAX_CLIENTS:
        raise Problem(503, f"too many event stream clients (at most {MAX_CLIENTS}); use a webhook")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT)
    if not ws.can_prepare(request).ok:
        raise Problem(
            426,
            "this endpoint is a WebSocket stream: connect with a WebSocket client",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )
    await ws.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue(CLIENT_QUEUE)
    dropped = 0

    def on_event(event: CallEvent, sequence: int) -> None:
        nonlocal dropped
        if wanted and event.type not in wanted:
            return
        try:
            queue.put_nowait(json.dumps(event_to_json(event, sequence)))
        except asyncio.QueueFull:
            dropped += 1

    unsubscribe = ctx.bus.subscribe(on_event)
    ctx.websockets.add(ws)
    reader = asyncio.ensure_future(_read_until_closed(ws))
    try:
        while not ws.closed:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await ws.send_str(getter.result())
    finally:
        unsubscribe()
        ctx.websockets.discard(ws)
        reader.cancel()
        await ws.close()
    return ws


async def _read_until_closed(ws: web.WebSocketResponse) -> None:
    """Clients only listen; reading is how a close or a dead peer is noticed."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break
