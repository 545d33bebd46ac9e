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
from pbx.store.api import WEBHOOK_EVENTS

routes = web.RouteTableDef()

JSON = "application/json"
PROBLEM = "application/problem+json"

STR: dict[str, Any] = {"type": "string"}
NUM: dict[str, Any] = {"type": "number"}
INT: dict[str, Any] = {"type": "integer"}
BOOL: dict[str, Any] = {"type": "boolean"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Any], required: tuple[str, ...] | None = None,
        closed: bool = True) -> dict[str, Any]:  # fmt: skip
    schema: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": list(props if required is None else required),
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def items_of(name: str) -> dict[str, Any]:
    return obj({"items": {"type": "array", "items": ref(name)}})


STRING_MAP = {"type": "object", "additionalProperties": STR}
DISPOSITIONS = ["ANSWERED", "BUSY", "NO ANSWER", "FAILED", "CANCELLED"]
RECORD = ["always", "never", "on_demand"]
PERMISSION = ["internal", "local", "national", "international"]
STRATEGIES = ["priority", "round-robin", "least-busy"]
DID_KINDS = ["extension", "group", "softphone"]
TRUNK_INPUT: dict[str, Any] = {
    "host": {**STR, "maxLength": 256},
    "port": {**INT, "minimum": 1, "maximum": 65535},
    "transport": {"enum": ["UDP", "TCP", "udp", "tcp"]},
    "domain": {**STR, "maxLength": 256},
    "username": {**STR, "maxLength": 256},
    "password": {**STR, "maxLength": 256},
    "register": BOOL,
    "expiry": {**INT, "minimum": 60, "maximum": 86400},
    "outbound_proxy": {**STR, "maxLength": 256},
    "caller_id": {**STR, "maxLength": 256},
    "prefix": {**STR, "maxLength": 256},
    "max_calls": {**INT, "minimum": 0, "maximum": 10000},
    "enabled": BOOL,
    "qualify": BOOL,
    "send_pai": BOOL,
    "pass_x_headers": BOOL,
}
CALL_STATES = ["dialing", "ringing", "early_media", "connected", "ending", "ended"]

SCHEMAS: dict[str, Any] = {
    "Problem": obj(
        {
            "type": STR,
            "title": STR,
            "status": INT,
            "detail": STR,
            "instance": STR,
            "errors": {"type": "array", "items": obj({"field": STR, "detail": STR})},
        },
        ("type", "title", "status", "detail"),
        closed=False,
    ),
    "Extension": obj(
        {
            "number": STR,
            "name": STR,
            "enabled": BOOL,
            "record_policy": {"enum": RECORD},
            "permission": {"enum": PERMISSION},
            "created": NUM,
            "contacts": INT,
            "password": {**STR, "description": "only when the PBX generated it"},
        },
        ("number", "name", "enabled", "record_policy", "permission", "created", "contacts"),
    ),
    "ExtensionCreate": obj(
        {
            "number": {**STR, "pattern": "^[0-9]{2,10}$"},
            "password": {**STR, "minLength": 8, "description": "generated when absent"},
            "name": {**STR, "maxLength": 128},
            "enabled": BOOL,
            "record_policy": {"enum": RECORD},
            "permission": {"enum": PERMISSION},
        },
        ("number",),
    ),
    "ExtensionUpdate": obj(
        {
            "password": {**STR, "minLength": 8},
            "name": {**STR, "maxLength": 128},
            "enabled": BOOL,
            "record_policy": {"enum": RECORD},
            "permission": {"enum": PERMISSION},
        },
        (),
    ),
    "Cdr": obj(
        {
            "id": nullable(INT),
            "call_id": STR,
            "caller": STR,
            "callee": STR,
            "start": NUM,
            "answer": nullable(NUM),
            "end": NUM,
            "duration": NUM,
            "billsec": NUM,
            "disposition": {"enum": DISPOSITIONS},
            "sip_code": INT,
            "sip_reason": STR,
            "hangup_side": {"enum": ["caller", "callee", "system"]},
            "x_headers": STRING_MAP,
            "recording": nullable(STR),
            "media_stats": nullable({"type": "object"}),
        }
    ),
    "CdrPage": obj({"items": {"type": "array", "items": ref("Cdr")}, "next_cursor": nullable(STR)}),
    "Leg": obj(
        {
            "side": {"enum": ["caller", "callee"]},
            "dialog_state": nullable(STR),
            "peer": nullable(STR),
            "transport": nullable(STR),
        }
    ),  # fmt: skip
    "Call": obj(
        {
            "label": STR,
            "call_id": STR,
            "caller": STR,
            "callee": STR,
            "state": {"enum": CALL_STATES},
            "start": NUM,
            "answer": nullable(NUM),
            "x_headers": STRING_MAP,
            "ringing_contacts": INT,
            "legs": {"type": "array", "items": ref("Leg")},
        }
    ),
    "Originate": obj(
        {
            "from": {**STR, "pattern": "^[0-9]{2,10}$", "description": "extension rung first"},
            "to": {**STR, "pattern": "^\\+?[0-9*#]{1,32}$", "description": "dialled on answer"},
            "caller_id": {**STR, "maxLength": 64},
            "x_headers": {**STRING_MAP, "description": "X- headers sent with the call"},
        },
        ("from", "to"),
    ),
    "CallAccepted": obj({"label": STR}),
    "Transfer": obj({"target": {**STR, "pattern": "^\\+?[0-9*#]{1,32}$"}}),
    "TransferAccepted": obj({"label": STR, "target": STR}),
    "RecordingState": obj({"label": STR, "recording": BOOL}),
    "Dtmf": obj(
        {
            "digits": {**STR, "pattern": "^[0-9*#A-Da-d]{1,32}$"},
            "duration_ms": {**INT, "minimum": 40, "maximum": 2000},
        },
        ("digits",),
    ),  # fmt: skip
    "DtmfAccepted": obj({"label": STR, "digits": STR}),
    "Status": obj(
        {
            "version": STR,
            "uptime": NUM,
            "active_calls": INT,
            "registered": INT,
            "trunks": {
                "type": "array",
                "items": obj(
                    {
                        "name": STR,
                        "enabled": BOOL,
                        "register": BOOL,
                        "status": {"enum": ["unknown", "up", "down"]},
                        "status_at": NUM,
                    }
                ),
            },
        },
        closed=False,
    ),  # fmt: skip
    "Registration": obj(
        {
            "extension": STR,
            "contact": STR,
            "source": STR,
            "transport": STR,
            "expires_at": NUM,
            "user_agent": STR,
            "reachable": BOOL,
        }
    ),  # fmt: skip
    "Webhook": obj(
        {
            "id": INT,
            "url": STR,
            "events": {"type": "array", "items": {"enum": WEBHOOK_EVENTS}},
            "description": STR,
            "created": NUM,
            "secret": STR,
        },
        ("id", "url", "events", "description", "created"),
    ),  # fmt: skip
    "WebhookCreate": obj(
        {
            "url": {**STR, "format": "uri", "description": "http:// or https://"},
            "secret": {**STR, "minLength": 16, "description": "HMAC key; generated when absent"},
            "events": {
                "type": "array",
                "items": {"enum": list(WEBHOOK_EVENTS)},
                "description": "empty or absent: every event",
            },
            "description": {**STR, "maxLength": 256},
        },
        ("url",),
    ),  # fmt: skip
    "Trunk": obj(
        {
            "name": STR,
            "host": STR,
            "port": INT,
            "transport": {"enum": ["UDP", "TCP"]},
            "domain": STR,
            "username": STR,
            "register": BOOL,
            "expiry": INT,
            "outbound_proxy": STR,
            "caller_id": STR,
            "prefix": STR,
            "max_calls": INT,
            "enabled": BOOL,
            "qualify": BOOL,
            "send_pai": BOOL,
            "pass_x_headers": BOOL,
            "status": {"enum": ["unknown", "up", "down"]},
            "status_at": NUM,
            "created": NUM,
            "password_set": BOOL,
        }
    ),
    "TrunkCreate": obj(
        {
            "name": {**STR, "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"},
            **TRUNK_INPUT,
        },
        ("name", "host"),
    ),
    "TrunkUpdate": obj(TRUNK_INPUT, ()),
    "Route": obj(
        {
            "name": STR,
            "patterns": {"type": "array", "items": STR},
            "trunks": {"type": "array", "items": STR},
            "strip": INT,
            "prepend": STR,
            "caller_id": STR,
            "permission": {"enum": PERMISSION},
            "strategy": {"enum": STRATEGIES},
            "position": INT,
        }
    ),
    "RouteCreate": obj(
        {
            "name": {**STR, "maxLength": 32},
            "patterns": {
                "type": "array",
                "items": STR,
                "minItems": 1,
                "description": "FreePBX dial patterns (9|NXXNXXXXXX) or re:REGEX",
            },
            "trunks": {
                "type": "array",
                "items": STR,
                "minItems": 1,
                "description": "trunk names in failover order",
            },
            "strip": {**INT, "minimum": 0, "maximum": 32},
            "prepend": {**STR, "maxLength": 32},
            "caller_id": {**STR, "maxLength": 64},
            "permission": {"enum": PERMISSION},
            "strategy": {"enum": STRATEGIES},
        },
        ("name", "patterns", "trunks"),
    ),
    "RouteMove": obj({"position": {**INT, "minimum": 1, "maximum": 10000}}),
    "Did": obj(
        {"number": STR, "target_kind": {"enum": DID_KINDS}, "target": STR, "trunk": nullable(STR)}
    ),
    "DidCreate": obj(
        {
            "number": {**STR, "pattern": "^(\\+?[0-9]{1,20}|s)$"},
            "target_kind": {"enum": DID_KINDS},
            "target": {**STR, "maxLength": 32},
            "trunk": {**STR, "maxLength": 32},
        },
        ("number", "target_kind"),
    ),
}
for _name in ("Extension", "Call", "Registration", "Webhook", "Trunk", "Route", "Did"):
    SCHEMAS[f"{_name}List"] = items_of(_name)


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
