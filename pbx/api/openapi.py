"""The OpenAPI 3.1 document of the API, served at `GET /api/v1/openapi.json`.

Built from small helpers so each operation states its parameters, body and
every status it can answer; tests check that the document and the router
list the same (method, path) pairs, and schemathesis checks that answers
match their schemas.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pbx import __version__
from pbx.api.openapi_schemas import (
    DISPOSITIONS,
    INT,
    JSON,
    NUM,
    PROBLEM,
    SCHEMAS,
    STR,
    ref,
)

routes = web.RouteTableDef()


def problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": ref("Problem")}}}


def json_body(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": ref(schema)}}}


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or STR}


def op(summary: str, responses: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
       body: str | None = None, public: bool = False) -> dict[str, Any]:  # fmt: skip
    """One operation; every authenticated one may answer 401."""
    operation: dict[str, Any] = {"summary": summary, "responses": dict(responses)}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {
            "required": True, "content": {JSON: {"schema": ref(body)}},
        }  # fmt: skip
        operation["responses"]["400"] = problem("Malformed JSON or not a JSON object")
        operation["responses"]["422"] = problem("A field fails validation")
    if public:
        operation["security"] = []
    else:
        operation["responses"]["401"] = problem("Missing, unknown or revoked token")
    return operation


NO_CONTENT = {"description": "Done"}
CDR_FILTERS = [
    query("since", NUM, "calls that started at or after this time (epoch seconds)"),
    query("until", NUM, "calls that started before this time (epoch seconds)"),
    query("caller", STR, "caller number, exact"),
    query("callee", STR, "callee number, exact"),
    query("disposition", {"enum": [*DISPOSITIONS, "NO_ANSWER"]}, "call outcome"),
    query(
        "x_header",
        STR,
        "an X- header's value as NAME:VALUE, e.g. X-Crm-Id:4711; scans the "
        "rows in the time range, so give since/until on a large history",
    ),
]
INVALID = problem("A parameter fails validation")
LABEL = path("label")
CALL_404 = problem("No active call with that label")
NOT_YET = problem("The running B2BUA cannot do this yet")
CONFLICT = problem("The call is not in a state that allows this")

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/openapi.json": {
        "get": op(
            "This document",
            {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {JSON: {"schema": {"type": "object"}}},
                }
            },
            public=True,
        ),
    },  # fmt: skip
    "/api/v1/status": {
        "get": op("Version, uptime, calls and registrations", {"200": json_body("Status")})
    },
    "/api/v1/bans": {
        "get": op("Addresses banned for guessing passwords", {"200": json_body("BanList")})
    },
    "/api/v1/bans/{address}": {
        "delete": op(
            "Lift a ban",
            {"204": NO_CONTENT, "404": problem("That address is not banned")},
            params=[path("address")],
        )
    },
    "/api/v1/registrations": {
        "get": op("Registered contacts", {"200": json_body("RegistrationList")})
    },
    "/metrics": {
        "get": op(
            "Prometheus metrics",
            {
                "200": {
                    "description": "Text exposition format 0.0.4",
                    "content": {"text/plain": {"schema": STR}},
                }
            },
        ),
    },  # fmt: skip
    "/api/v1/extensions": {
        "get": op("All extensions", {"200": json_body("ExtensionList")}),
        "post": op(
            "Create an extension",
            {
                "201": json_body("Extension", "Created"),
                "409": problem("The extension exists"),
            },
            body="ExtensionCreate",
        ),
    },  # fmt: skip
    "/api/v1/extensions/{number}": {
        "parameters": [path("number")],
        "get": op(
            "One extension",
            {"200": json_body("Extension"), "404": problem("No such extension"), "422": INVALID},
        ),
        "patch": op(
            "Change an extension",
            {"200": json_body("Extension"), "404": problem("No such extension")},
            body="ExtensionUpdate",
        ),
        "delete": op(
            "Remove an extension and its registrations",
            {"204": NO_CONTENT, "404": problem("No such extension"), "422": INVALID},
        ),
    },  # fmt: skip
    "/api/v1/cdrs": {
        "get": op(
            "Call detail records, newest first",
            {"200": json_body("CdrPage"), "422": INVALID},
            params=[
                *CDR_FILTERS,
                query("limit", {**INT, "minimum": 1, "maximum": 1000}, "page size (default 50)"),
                query("cursor", STR, "next_cursor of the previous page"),
            ],
        ),
    },  # fmt: skip
    "/api/v1/cdrs.csv": {
        "get": op(
            "Call detail records as CSV (RFC 4180)",
            {
                "200": {"description": "CSV", "content": {"text/csv": {"schema": STR}}},
                "422": INVALID,
            },
            params=CDR_FILTERS,
        ),
    },  # fmt: skip
    "/api/v1/cdrs/{cdr_id}": {
        "parameters": [path("cdr_id")],
        "get": op(
            "One call detail record", {"200": json_body("Cdr"), "404": problem("No such CDR")}
        ),
    },  # fmt: skip
    "/api/v1/cdrs/{cdr_id}/recording": {
        "parameters": [path("cdr_id")],
        "get": op(
            "The call's recording; Range requests supported",
            {
                "200": {
                    "description": "The whole file",
                    "content": {"audio/wav": {"schema": {**STR, "format": "binary"}}},
                },
                "206": {
                    "description": "The requested range",
                    "content": {"audio/wav": {"schema": {**STR, "format": "binary"}}},
                },
                "404": problem("No such CDR, or no recording"),
                "416": {"description": "The range is outside the file"},
            },
        ),
    },  # fmt: skip
    "/api/v1/calls": {
        "get": op("Active calls with their legs", {"200": json_body("CallList")}),
        "post": op(
            "Click-to-call: ring `from`, then dial `to`",
            {
                "202": json_body("CallAccepted", "Ringing the first extension"),
                "404": problem("No such extension"),
                "409": CONFLICT,
                "501": NOT_YET,
            },
            body="Originate",
        ),
    },  # fmt: skip
    "/api/v1/calls/{label}": {
        "parameters": [LABEL],
        "get": op("One active call", {"200": json_body("Call"), "404": CALL_404}),
        "delete": op(
            "Hang up", {"204": NO_CONTENT, "404": CALL_404, "409": CONFLICT, "501": NOT_YET}
        ),
    },  # fmt: skip
    "/api/v1/calls/{label}/transfer": {
        "parameters": [LABEL],
        "post": op(
            "Blind transfer of the callee's leg",
            {
                "202": json_body("TransferAccepted", "Transferring"),
                "404": CALL_404,
                "409": CONFLICT,
                "501": NOT_YET,
            },
            body="Transfer",
        ),
    },  # fmt: skip
    "/api/v1/calls/{label}/recording": {
        "parameters": [LABEL],
        "post": op(
            "Start recording",
            {
                "202": json_body("RecordingState", "Started"),
                "404": CALL_404,
                "409": CONFLICT,
                "501": NOT_YET,
            },
        ),
        "delete": op(
            "Stop recording",
            {
                "202": json_body("RecordingState", "Stopped"),
                "404": CALL_404,
                "409": CONFLICT,
                "501": NOT_YET,
            },
        ),
    },  # fmt: skip
    "/api/v1/calls/{label}/dtmf": {
        "parameters": [LABEL],
        "post": op(
            "Send DTMF digits",
            {
                "202": json_body("DtmfAccepted", "Sending"),
                "404": CALL_404,
                "409": CONFLICT,
                "501": NOT_YET,
            },
            body="Dtmf",
        ),
    },  # fmt: skip
    "/api/v1/trunks": {
        "get": op("SIP trunks (passwords are write-only)", {"200": json_body("TrunkList")}),
        "post": op(
            "Add a trunk",
            {"201": json_body("Trunk", "Created"), "409": problem("The trunk exists")},
            body="TrunkCreate",
        ),
    },
    "/api/v1/trunks/{name}": {
        "parameters": [path("name")],
        "get": op("One trunk", {"200": json_body("Trunk"), "404": problem("No such trunk")}),
        "patch": op(
            "Change a trunk",
            {"200": json_body("Trunk"), "404": problem("No such trunk")},
            body="TrunkUpdate",
        ),
        "delete": op("Remove a trunk", {"204": NO_CONTENT, "404": problem("No such trunk")}),
    },
    "/api/v1/routes": {
        "get": op("Outbound routes in the order they are tried", {"200": json_body("RouteList")}),
        "post": op(
            "Append an outbound route",
            {"201": json_body("Route", "Created"), "409": problem("The route exists")},
            body="RouteCreate",
        ),
    },
    "/api/v1/routes/{name}": {
        "parameters": [path("name")],
        "get": op("One route", {"200": json_body("Route"), "404": problem("No such route")}),
        "patch": op(
            "Move a route (1 = tried first)",
            {"200": json_body("Route"), "404": problem("No such route")},
            body="RouteMove",
        ),
        "delete": op("Remove a route", {"204": NO_CONTENT, "404": problem("No such route")}),
    },
    "/api/v1/dids": {
        "get": op("Inbound numbers", {"200": json_body("DidList")}),
        "post": op(
            "Add an inbound number",
            {"201": json_body("Did", "Created"), "409": problem("The DID exists")},
            body="DidCreate",
        ),
    },
    "/api/v1/dids/{number}": {
        "parameters": [path("number")],
        "get": op("One inbound number", {"200": json_body("Did"), "404": problem("No such DID")}),
        "delete": op(
            "Remove an inbound number", {"204": NO_CONTENT, "404": problem("No such DID")}
        ),
    },
    "/api/v1/webhooks": {
        "get": op("Registered webhooks", {"200": json_body("WebhookList")}),
        "post": op(
            "Register a webhook (the secret is shown once)",
            {"201": json_body("Webhook", "Created")},
            body="WebhookCreate",
        ),
    },  # fmt: skip
    "/api/v1/webhooks/{webhook_id}": {
        "parameters": [path("webhook_id")],
        "get": op("One webhook", {"200": json_body("Webhook"), "404": problem("No such webhook")}),
        "delete": op("Remove a webhook", {"204": NO_CONTENT, "404": problem("No such webhook")}),
    },  # fmt: skip
    "/api/v1/events": {
        "get": op(
            "Call events as a WebSocket stream (one JSON event per message)",
            {
                "101": {"description": "Switching to WebSocket"},
                "422": INVALID,
                "426": problem("Not a WebSocket handshake"),
                "503": problem("Too many event stream clients"),
            },
            params=[
                query("types", STR, "comma-separated event types; absent: all"),
                query("access_token", STR, "the token, for clients that cannot send headers"),
            ],
        ),
    },  # fmt: skip
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "DeskPBX HTTP API",
        "version": __version__,
        "description": "Calls, configuration, history, status and events of a DeskPBX. "
        "Errors are RFC 9457 problem+json. Webhook deliveries carry "
        "X-DeskPBX-Signature: sha256=HMAC-SHA256(secret, body).",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": SCHEMAS,
    },
    "paths": PATHS,
}


@routes.get("/api/v1/openapi.json")
async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
