"""Bearer-token authentication (RFC 6750) for every API route but the OpenAPI document.

Tokens are made by `deskpbx token create NAME`, which prints the token once and
stores sha256(token) only; here the presented token is hashed and looked up,
so the database never holds anything that opens the API. A missing or unknown
token gets 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3). Browsers cannot
set headers on a WebSocket handshake, so the event stream also accepts
`?access_token=` (RFC 6750 §2.3).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from pbx.api.problems import Handler, Problem
from pbx.store import Store

TOKEN_PREFIX = "dpbx_"
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})
QUERY_TOKEN_PATHS = frozenset({"/api/v1/events"})
TOUCH_INTERVAL = 60.0
STORE_KEY: web.AppKey[Store] = web.AppKey("store", Store)


def new_token() -> str:
    """256 random bits, URL-safe, with a prefix that secret scanners can recognise."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _presented(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.path in QUERY_TOKEN_PATHS:
        return request.query.get("access_token") or None
    return None


def auth_middleware(store: Store, wall: Callable[[], float]) -> Middleware:
    """The middleware for `store`'s tokens; `wall` stamps last use (at most once a minute)."""
    touched: dict[str, float] = {}

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or request.method == "OPTIONS":
            return await handler(request)
        token = _presented(request)
        challenge = {"WWW-Authenticate": 'Bearer realm="deskpbx"'}
        if token is None:
            raise Problem(
                401,
                "missing token: send 'Authorization: Bearer <token>'; "
                "create one with 'deskpbx token create NAME'",
                headers=challenge,
            )
        row = store.find_api_token(token_hash(token))
        if row is None:
            raise Problem(
                401,
                "unknown or revoked token: check it, or create a new one with "
                "'deskpbx token create NAME'",
                headers={"WWW-Authenticate": 'Bearer realm="deskpbx", error="invalid_token"'},
            )
        now = wall()
        if now - touched.get(row.name, 0.0) >= TOUCH_INTERVAL:
            touched[row.name] = now
            store.touch_api_token(row.name, now)
        return await handler(request)

    return middleware
