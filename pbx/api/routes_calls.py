"""Active calls: list and inspect, originate (click-to-call), hang up, transfer, record, DTMF.

Reads come straight from `pbx.b2bua.calls` (label -> pbx.call.Call). Actions
call B2BUA methods; while a method is not there yet the route answers 501
(problem+json) instead of pretending. The methods this module calls, and what
their exceptions become:

    b2bua.originate(from_ext: str, to_number: str, caller_id: str | None,
                    x_headers: dict[str, str]) -> str          # the new call's label
    b2bua.hangup(label: str) -> None
    b2bua.transfer(label: str, target: str) -> None            # blind: leg B re-routed
    b2bua.start_recording(label: str) -> object   # else pbx.recordings.start_recording
    b2bua.stop_recording(label: str) -> None      # (pbx.recording.RecordingManager)
    b2bua.send_dtmf(label: str, digits: str, duration_ms: int) -> None  # RFC 4733 / INFO

    LookupError -> 404, ValueError -> 422, RuntimeError (wrong call state) -> 409,
    pbx.admission.CallLimitReached (--max-calls or --max-call-rate reached) -> 503.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from pbx.admission import CallLimitReached
from pbx.api.body import Fields, json_object
from pbx.api.context import context
from pbx.api.problems import Problem
from pbx.store.api import validate_x_header
from pbx.store.rows import validate_number

routes = web.RouteTableDef()

DIAL_RE = re.compile(r"\+?[0-9*#]{1,32}")
DTMF_RE = re.compile(r"[0-9*#A-Da-d]{1,32}")
EXCEPTION_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (CallLimitReached, 503),
    (LookupError, 404),
    (ValueError, 422),
    (RuntimeError, 409),
)


def _leg(side: str, dialog: Any, peer: Any) -> dict[str, Any]:
    state = getattr(getattr(dialog, "state", None), "value", None)
    destination = getattr(peer, "destination", None)
    return {
        "side": side,
        "dialog_state": str(state) if state is not None else None,
        "peer": f"{destination[0]}:{destination[1]}" if destination else None,
        "transport": getattr(peer, "transport", None),
    }


def call_view(call: Any) -> dict[str, Any]:
    """The JSON shape of one call (pbx.call.Call) and its two legs."""
    return {
        "label": call.label,
        "call_id": call.a_invite.call_id,
        "caller": call.caller,
        "callee": call.callee,
        "state": call.state.value,
        "start": call.start,
        "answer": call.answer,
        "x_headers": dict(call.x_headers),
        "ringing_contacts": len(call.pending_forks()),
        "legs": [
            _leg("caller", call.a_dialog, call.a_peer),
            _leg("callee", call.b_dialog, call.b_peer),
        ],
    }


def _calls(request: web.Request) -> dict[str, Any]:
    return dict(getattr(context(request).pbx.b2bua, "calls", {}))


def _call(request: web.Request) -> Any:
    label = request.match_info["label"]
    call = _calls(request).get(label)
    if call is None:
        raise Problem(404, f"no active call {label}: list them with GET /api/v1/calls")
    return call


def _b2bua_method(request: web.Request, name: str, what: str) -> Callable[..., Any]:
    """The B2BUA's method `name`, else the recording manager's (`pbx.recordings`), else 501."""
    pbx = context(request).pbx
    for provider in (pbx.b2bua, getattr(pbx, "recordings", None)):
        method = getattr(provider, name, None)
        if callable(method):
            return cast(Callable[..., Any], method)
    raise Problem(501, f"this DeskPBX cannot {what} yet (B2BUA method {name} missing)")


def _run(method: Callable[..., Any], *args: Any) -> Any:
    try:
        return method(*args)
    except Exception as exc:
        for kind, status in EXCEPTION_STATUS:
            if isinstance(exc, kind):
                raise Problem(status, str(exc) or type(exc).__name__) from exc
        raise


@routes.get("/api/v1/calls")
async def list_calls(request: web.Request) -> web.Response:
    return web.json_response({"items": [call_view(c) for c in _calls(request).values()]})


@routes.post("/api/v1/calls")
async def originate(request: web.Request) -> web.Response:
    """Click-to-call: ring extension `from`; when it answers, dial `to` through the dialplan."""
    ctx = context(request)
    fields = Fields(await json_object(request), ("from", "to", "caller_id", "x_headers"))
    from_ext = fields.check("from", fields.string("from", required=True), validate_number)
    to_number = fields.string("to", required=True, max_length=32)
    if to_number is not None and DIAL_RE.fullmatch(to_number) is None:
        fields.error("to", "must be a dialable number: digits, * and #, optionally a leading +")
    caller_id = fields.string("caller_id", max_length=64)
    x_headers = fields.string_map("x_headers") or {}
    for name in x_headers:
        fields.check(f"x_headers.{name}", name, validate_x_header)
    fields.done()
    if ctx.store.find_extension(from_ext) is None:
        raise Problem(404, f"no extension {from_ext} to ring first")
    method = _b2bua_method(request, "originate", "originate calls")
    label = _run(method, from_ext, to_number, caller_id, x_headers)
    location = f"/api/v1/calls/{label}"
    return web.json_response({"label": label}, status=202, headers={"Location": location})


@routes.get("/api/v1/calls/{label}")
async def get_call(request: web.Request) -> web.Response:
    return web.json_response(call_view(_call(request)))


@routes.delete("/api/v1/calls/{label}")
async def hangup(request: web.Request) -> web.Response:
    call = _call(request)
    _run(_b2bua_method(request, "hangup", "hang up calls"), call.label)
    return web.Response(status=204)


@routes.post("/api/v1/calls/{label}/transfer")
async def transfer(request: web.Request) -> web.Response:
    call = _call(request)
    fields = Fields(await json_object(request), ("target",))
    target = fields.string("target", required=True, max_length=32)
    if target is not None and DIAL_RE.fullmatch(target) is None:
        fields.error("target", "must be a dialable number: digits, * and #")
    fields.done()
    _run(_b2bua_method(request, "transfer", "transfer calls"), call.label, target)
    return web.json_response({"label": call.label, "target": target}, status=202)


@routes.post("/api/v1/calls/{label}/recording")
async def start_recording(request: web.Request) -> web.Response:
    call = _call(request)
    _run(_b2bua_method(request, "start_recording", "record calls"), call.label)
    return web.json_response({"label": call.label, "recording": True}, status=202)


@routes.delete("/api/v1/calls/{label}/recording")
async def stop_recording(request: web.Request) -> web.Response:
    call = _call(request)
    _run(_b2bua_method(request, "stop_recording", "record calls"), call.label)
    return web.json_response({"label": call.label, "recording": False}, status=202)


@routes.post("/api/v1/calls/{label}/dtmf")
async def send_dtmf(request: web.Request) -> web.Response:
    call = _call(request)
    fields = Fields(await json_object(request), ("digits", "duration_ms"))
    digits = fields.string("digits", required=True, max_length=32)
    if digits is not None and DTMF_RE.fullmatch(digits) is None:
        fields.error("digits", "use 1 to 32 of 0-9, *, #, A-D")
    duration = fields.body.get("duration_ms", 100)
    if isinstance(duration, bool) or not isinstance(duration, int) or not 40 <= duration <= 2000:
        fields.error("duration_ms", "must be an integer from 40 to 2000")
    fields.done()
    _run(_b2bua_method(request, "send_dtmf", "send DTMF"), call.label, digits, duration)
    return web.json_response({"label": call.label, "digits": digits}, status=202)
