"""RFC 9457 problem details: every API error is `application/problem+json`.

A handler raises `Problem(status, detail, ...)` (or lets a typed `StoreError`
escape); the middleware turns it into a JSON body with `type`, `title`,
`status`, `detail` and, for 422, `errors: [{"field", "detail"}]` naming every
bad field (the "invalid-params" extension member of RFC 9457 §3.2). The
`detail` is a sentence a developer can act on. A crash is logged and answered
with a 500 problem that leaks no traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from pbx.store import DuplicateExtension, InvalidValue, StoreError, UnknownExtension
from pbx.store.api import DuplicateToken, UnknownToken, UnknownWebhook
from pbx.store.trunks import DuplicateItem, UnknownItem

log = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"
TYPE_BASE = "https://deskpbx.invalid/problems/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Typed store failures and the status they become (subclasses before their bases).
STORE_STATUS: tuple[tuple[type[StoreError], int], ...] = (
    (DuplicateExtension, 409),
    (DuplicateToken, 409),
    (DuplicateItem, 409),
    (UnknownExtension, 404),
    (UnknownToken, 404),
    (UnknownWebhook, 404),
    (UnknownItem, 404),
    (InvalidValue, 422),
)

SLUG = {
    400: "malformed-request",
    401: "unauthorized",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    416: "range-not-satisfiable",
    422: "validation-failed",
    426: "upgrade-required",
    501: "not-implemented",
    503: "unavailable",
}


class Problem(Exception):
    """An HTTP error answered as problem+json (RFC 9457 §3)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def field_error(field: str, detail: str) -> Problem:
    """422 naming one bad field."""
    return Problem(422, f"{field}: {detail}", errors=[{"field": field, "detail": detail}])


def problem_body(status: int, detail: str, instance: str | None = None) -> dict[str, Any]:
    slug = SLUG.get(status, "error")
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    return body


def problem_response(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = problem_body(status, detail, instance)
    if errors is not None:
        body["errors"] = errors
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type=PROBLEM_TYPE,
        headers=headers,
    )


def store_problem(exc: StoreError) -> Problem:
    for kind, status in STORE_STATUS:
        if isinstance(exc, kind):
            return Problem(status, str(exc))
    return Problem(503, f"the database cannot be used: {exc}")


def _http_detail(exc: web.HTTPException) -> str:
    """aiohttp's own errors (unknown path, wrong method, body too large) in plain words."""
    if exc.status == 404:
        return "no such resource; the API lives under /api/v1 (see /api/v1/openapi.json)"
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return f"this resource does not take that method; allowed: {allowed}"
    return exc.reason or HTTPStatus(exc.status).phrase


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as exc:
        return problem_response(
            exc.status, exc.detail, instance=request.path, errors=exc.errors, headers=exc.headers
        )
    except StoreError as exc:
        problem = store_problem(exc)
        return problem_response(problem.status, problem.detail, instance=request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Content-Range")}
        return problem_response(
            exc.status, _http_detail(exc), instance=request.path, headers=headers
        )
    except Exception:
        log.exception("API %s %s failed", request.method, request.path)
        return problem_response(
            500, "the PBX failed to handle this request; see its log", instance=request.path
        )
