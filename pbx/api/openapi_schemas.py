"""The component schemas of the OpenAPI document (pbx.api.openapi), one per JSON shape.

Each mirrors a `*_view()` / `to_public_dict()` of a route module; objects are
closed (additionalProperties false) so a field added to an answer without
being documented fails the schemathesis test.
"""

from __future__ import annotations

from typing import Any

from pbx.store.api import WEBHOOK_EVENTS

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
    "srv": BOOL,
    "match_networks": {**STR, "maxLength": 1024},
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
            "call_limits": obj(
                {
                    "max_calls": INT,
                    "max_call_rate": NUM,
                    "refused_full": INT,
                    "refused_rate": INT,
                }
            ),
            "media_timeout": obj({"seconds": NUM, "ended": INT}),
            "dialog_ping": obj({"seconds": NUM, "ended": INT}),
            "session_timers": obj({"min_se": INT, "active": INT, "ended": INT}),
            "auth_bans": obj(
                {
                    "after": INT,
                    "window": NUM,
                    "seconds": NUM,
                    "bans": INT,
                    "dropped": INT,
                    "banned": {"type": "array", "items": STR},
                }
            ),
            "dns": obj(
                {
                    "names": INT,
                    "lookups_running": INT,
                    "nameservers": {"type": "array", "items": STR},
                    "targets_down": INT,
                }
            ),
            "trunks": {
                "type": "array",
                "items": obj(
                    {
                        "name": STR,
                        "enabled": BOOL,
                        "register": BOOL,
                        "status": {"enum": ["unknown", "up", "down"]},
                        "status_at": NUM,
                        "servers": {
                            "type": "array",
                            "items": obj({"address": STR, "down": BOOL}),
                        },
                    }
                ),
            },
        },
        closed=False,
    ),  # fmt: skip
    "BanList": obj({"items": {"type": "array", "items": obj({"address": STR, "remaining": NUM})}}),
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
            "srv": BOOL,
            "match_networks": STR,
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
            "record_policy": {"enum": RECORD},
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
            "record_policy": {"enum": RECORD},
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
