"""The HTTP API for business systems: aiohttp in the PBX's own event loop.

`start_api(pbx, host, port)` serves it (127.0.0.1 by default); `EventBus` and the
frozen call events in `pbx.api.events` are how the PBX tells the API, webhooks and
WebSocket clients what calls do.
"""

from pbx.api.app import ApiServer, build_app, start_api
from pbx.api.events import CallAnswered, CallEnded, CallRinging, EventBus, RecordingReady

__all__ = [
    "ApiServer",
    "CallAnswered",
    "CallEnded",
    "CallRinging",
    "EventBus",
    "RecordingReady",
    "build_app",
    "start_api",
]
