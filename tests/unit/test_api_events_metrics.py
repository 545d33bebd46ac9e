"""The WebSocket event stream, Prometheus /metrics, and the OpenAPI document's match with routes."""

from __future__ import annotations

import asyncio
import re

import pytest

from pbx.api.events import CallAnswered, CallEnded, CallRinging
from pbx.api.openapi import DOCUMENT
from tests.unit.test_api_fakes import WALL, Api, api_fixture  # noqa: F401

PROBLEM = "application/problem+json"


def ringing() -> CallRinging:
    return CallRinging(call="c1", call_id="c1@x", caller="1001", callee="1002", at=WALL)


def ended(disposition: str, stats: dict[str, object] | None = None) -> CallEnded:
    cdr = {"id": 1, "disposition": disposition, "media_stats": stats}
    return CallEnded(call="c1", call_id="c1@x", caller="1001", callee="1002", at=WALL, cdr=cdr)


async def _wait_subscribed(api: Api, count: int) -> None:
    for _ in range(100):
        if len(api.ctx.websockets) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the WebSocket client never subscribed")


async def test_websocket_streams_events_with_the_webhook_shape(api: Api) -> None:
    ws = await api.client.ws_connect("/api/v1/events", headers=api.auth)
    await _wait_subscribed(api, 1)
    api.ctx.bus.publish(ringing())
    api.ctx.bus.publish(ended("BUSY"))
    first = await ws.receive_json(timeout=5)
    second = await ws.receive_json(timeout=5)
    assert first == {"type": "call.ringing", "sequence": 1, "data": {
        "call": "c1", "call_id": "c1@x", "caller": "1001", "callee": "1002", "at": WALL,
        "x_headers": {}}}  # fmt: skip
    assert second["type"] == "call.ended"
    assert second["data"]["cdr"]["disposition"] == "BUSY"
    await ws.close()
    for _ in range(100):
        if not api.ctx.websockets:
            break
        await asyncio.sleep(0.01)
    assert api.ctx.websockets == set()


async def test_websocket_type_filter_and_query_token(api: Api) -> None:
    ws = await api.client.ws_connect(f"/api/v1/events?types=call.answered&access_token={api.token}")
    await _wait_subscribed(api, 1)
    api.ctx.bus.publish(ringing())
    api.ctx.bus.publish(CallAnswered(call="c1", call_id="c1@x", caller="1", callee="2", at=WALL))
    message = await ws.receive_json(timeout=5)
    assert (message["type"], message["sequence"]) == ("call.answered", 2)
    await ws.close()


async def test_events_without_upgrade_or_token(api: Api) -> None:
    response = await api.get("/api/v1/events")
    assert response.status == 426
    assert response.headers["Upgrade"] == "websocket"
    assert (await api.client.get("/api/v1/events")).status == 401
    bad = await api.get("/api/v1/events?types=call.exploded")
    assert bad.status == 422
    assert (await bad.json(content_type=PROBLEM))["errors"][0]["field"] == "types"


async def test_metrics_in_prometheus_text_format(api: Api) -> None:
    for _ in range(2):  # the fake PBX bans after two wrong passwords
        api.pbx.bans.failed("203.0.113.9", api.clock())
    api.ctx.metrics.count_response(200)
    api.ctx.metrics.count_response(200)
    api.ctx.metrics.count_response(486)
    stats = {"caller": {"packets_in": 500, "packets_out": 480},
             "callee": {"packets_in": 490, "packets_out": 495}}  # fmt: skip
    api.ctx.bus.publish(ended("ANSWERED", stats))
    api.ctx.bus.publish(ended("NO ANSWER"))
    response = await api.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.text()
    lines = set(text.splitlines())
    for expected in (
        'deskpbx_info{version="0.1.0"} 1',
        "deskpbx_uptime_seconds 12.5",
        "deskpbx_active_calls 0",
        "deskpbx_registered_contacts 2",
        'deskpbx_calls_total{disposition="ANSWERED"} 1',
        'deskpbx_calls_total{disposition="NO ANSWER"} 1',
        'deskpbx_sip_responses_total{code="200"} 2',
        'deskpbx_sip_responses_total{code="486"} 1',
        'deskpbx_relay_packets_total{direction="in"} 990',
        'deskpbx_relay_packets_total{direction="out"} 975',
        "deskpbx_relay_packets_lost_total 15",
        'deskpbx_webhook_deliveries_total{outcome="delivered"} 0',
        'deskpbx_calls_refused_total{limit="max_calls"} 3',
        'deskpbx_calls_refused_total{limit="max_call_rate"} 0',
        "deskpbx_calls_media_timeout_total 2",
        "deskpbx_calls_dialog_ping_total 3",
        "deskpbx_calls_session_timer_total 1",
        "deskpbx_auth_bans_total 1",
        "deskpbx_banned_addresses 1",
        "deskpbx_banned_messages_dropped_total 0",
        "deskpbx_dns_names 0",
        "deskpbx_dns_servers_down 0",
        "# TYPE deskpbx_calls_total counter",
    ):
        assert expected in lines, expected
    sample = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"\})? -?[0-9.e+]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    assert (await api.client.get("/metrics")).status == 401


def _app_routes(api: Api) -> set[tuple[str, str]]:
    pairs = set()
    for route in api.client.app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        info = route.resource.get_info() if route.resource else {}
        pairs.add((route.method.lower(), info.get("path") or info.get("formatter")))
    return pairs


async def test_openapi_lists_exactly_the_routes_of_the_app(api: Api) -> None:
    body = await (await api.client.get("/api/v1/openapi.json")).json()
    documented = {
        (method, path)
        for path, item in body["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == _app_routes(api)
    assert len(documented) == 42


def test_every_reference_resolves_and_every_operation_answers_problems() -> None:
    schemas = DOCUMENT["components"]["schemas"]
    refs = re.findall(r'"#/components/schemas/([A-Za-z]+)"', repr(DOCUMENT).replace("'", '"'))
    assert refs and all(name in schemas for name in refs)
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            codes = set(operation["responses"])
            if path != "/api/v1/openapi.json":
                assert "401" in codes, (method, path)
            if "requestBody" in operation:
                assert {"400", "422"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)


async def test_event_stream_clients_are_capped(api: Api, monkeypatch) -> None:
    import pbx.api.routes_events as routes_events

    monkeypatch.setattr(routes_events, "MAX_CLIENTS", 1)
    first = await api.client.ws_connect("/api/v1/events", headers=api.auth)
    await _wait_subscribed(api, 1)
    response = await api.get("/api/v1/events")
    assert response.status == 503
    assert "use a webhook" in (await response.json(content_type=PROBLEM))["detail"]
    await first.close()


def test_http_listen_address_defaults_to_loopback() -> None:
    from pbx.api.app import parse_http_listen
    from pbx.config import ConfigError

    assert parse_http_listen("8081") == ("127.0.0.1", 8081)
    assert parse_http_listen(":8082") == ("127.0.0.1", 8082)
    assert parse_http_listen("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_http_listen("[::1]:8080") == ("::1", 8080)
    assert parse_http_listen("127.0.0.1") == ("127.0.0.1", 8080)
    with pytest.raises(ConfigError, match="outside 1-65535"):
        parse_http_listen("127.0.0.1:99999")
