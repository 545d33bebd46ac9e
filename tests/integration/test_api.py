"""The HTTP API on a real PBX (its own thread and loop) with real phones (SIPp) on 127.0.0.1.

Covers the issue's proof points that need sockets: a bad token gets 401,
malformed JSON 400 with a problem body, a webhook receiver gets the call's
events with a valid signature and the CDR, the CDR filters, pages and CSV
see the call, and a recording downloads whole and by range.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pbx.api import start_api
from pbx.api.app import ApiServer
from pbx.api.auth import new_token, token_hash
from pbx.api.webhooks import sign
from pbx.store import Cdr, Disposition
from tests.integration.pbx_harness import RunningPbx, start_pbx
from tests.integration.peers.sipp import SIPP, Sipp, auth_field, scenario, write_csv
from tests.integration.ports import free_port
from tests.integration.test_pbx_sipp import PASSWORDS, callee, register

pytestmark = pytest.mark.integration
needs_sipp = pytest.mark.skipif(
    SIPP is None, reason="sipp not installed (Debian package sip-tester)"
)
PROBLEM = "application/problem+json"


@dataclass
class Http:
    base: str
    token: str

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, token: str | None = None,
                ) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        sent = {"Authorization": f"Bearer {self.token if token is None else token}"}
        sent.update(headers or {})
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        body = json.dumps(payload).encode() if payload is not None else None
        status, _, raw = self.request(method, path, body, {"Content-Type": "application/json"})
        return status, json.loads(raw) if raw else None


@dataclass
class Running:
    pbx: RunningPbx
    api: ApiServer
    http: Http


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    pbx = start_pbx(tmp_path / "pbx")
    api = asyncio.run_coroutine_threadsafe(start_api(pbx.pbx, "127.0.0.1", 0), pbx.loop).result(10)
    token = new_token()
    pbx.run(lambda: pbx.pbx.store.add_api_token("it", token_hash(token), time.time()))
    try:
        yield Running(pbx, api, Http(api.url, token))
    finally:
        asyncio.run_coroutine_threadsafe(api.close(), pbx.loop).result(10)
        pbx.stop()


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that records each POST."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.arrived:
                state.received.append((dict(self.headers), body))
                state.arrived.notify_all()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()
    thread.join(5)


def test_bad_token_is_401_and_malformed_json_is_400(running: Running) -> None:
    http = running.http
    status, headers, body = http.request("GET", "/api/v1/status", token="dpbx_wrong")
    assert status == 401
    assert headers["Content-Type"].startswith(PROBLEM)
    assert json.loads(body)["status"] == 401
    status, headers, body = http.request(
        "POST", "/api/v1/extensions", b'{"number": "2001", "password": ',
        {"Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 400
    assert headers["Content-Type"].startswith(PROBLEM)
    problem = json.loads(body)
    assert (problem["status"], problem["title"]) == (400, "Bad Request")
    assert problem["detail"].startswith("malformed JSON at line 1 column")


def test_status_extensions_and_openapi_on_a_real_pbx(running: Running) -> None:
    http = running.http
    status, body = http.json("GET", "/api/v1/status")
    assert status == 200
    assert (body["active_calls"], body["registered"]) == (0, 0)
    assert body["uptime"] >= 0
    status, body = http.json("GET", "/api/v1/extensions")
    assert [e["number"] for e in body["items"]] == [f"100{i}" for i in range(1, 10)]
    status, body = http.json("POST", "/api/v1/extensions", {"number": "2001"})
    assert status == 201
    assert running.pbx.run(lambda: running.pbx.pbx.store.find_extension("2001")) is not None
    status, _, raw = http.request("GET", "/api/v1/openapi.json", token="")
    assert status == 200 and json.loads(raw)["openapi"] == "3.1.0"


def _add_cdrs(running: Running, cdrs: list[Cdr]) -> list[Cdr]:
    return running.pbx.run(lambda: [running.pbx.pbx.store.add_cdr(c) for c in cdrs])


def _cdr(start: float, caller: str, **rest: Any) -> Cdr:
    return Cdr.from_times(call_id=f"it-{start}", caller=caller, callee="1002", start=start,
                          answer=start + 1, end=start + 20, disposition=Disposition.ANSWERED,
                          **rest)  # fmt: skip


def test_cdr_filters_pages_and_csv(running: Running) -> None:
    base = 1_800_000_000.0
    _add_cdrs(running, [_cdr(base + i, "1001" if i % 2 else "1003",
                             x_headers={"X-Ticket": f"T{i}"}) for i in range(7)])  # fmt: skip
    http = running.http
    seen: list[float] = []
    cursor = ""
    for _ in range(10):
        status, body = http.json("GET", f"/api/v1/cdrs?caller=1001&limit=2{cursor}")
        assert status == 200
        seen += [c["start"] for c in body["items"]]
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert seen == [base + 5, base + 3, base + 1]
    status, body = http.json("GET", f"/api/v1/cdrs?x_header=X-Ticket:T4&since={base}")
    assert [c["caller"] for c in body["items"]] == ["1003"]
    status, headers, raw = http.request("GET", f"/api/v1/cdrs.csv?until={base + 3}")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert [float(r["start"]) for r in rows] == [base + 2, base + 1, base]


def test_recording_downloads_whole_and_by_range(running: Running) -> None:
    folder = running.pbx.data_dir / "recordings" / "2027-01-01"
    folder.mkdir(parents=True)
    content = b"RIFF" + bytes(range(256)) * 64
    path = folder / "call-1.wav"
    path.write_bytes(content)
    [cdr] = _add_cdrs(running, [_cdr(1_800_000_000.0, "1001", recording=str(path))])
    url = f"/api/v1/cdrs/{cdr.id}/recording"
    status, headers, body = running.http.request("GET", url)
    assert (status, body) == (200, content)
    assert headers["Content-Type"] == "audio/wav"
    status, headers, body = running.http.request("GET", url, headers={"Range": "bytes=4-1027"})
    assert status == 206
    assert headers["Content-Range"] == f"bytes 4-1027/{len(content)}"
    assert body == content[4:1028]
    path.unlink()
    status, headers, body = running.http.request("GET", url)
    assert status == 404 and headers["Content-Type"].startswith(PROBLEM)


def _start_call(running: Running, tmp_path: Path, pause_ms: int) -> Sipp:
    csv_path = write_csv([["1001", auth_field("1001", PASSWORDS["1001"]), "1002"]], tmp_path)
    return Sipp(scenario("uac_call.xml", tmp_path), running.pbx.address, local_port=free_port(),
                media_port=free_port(step=4), inject=csv_path, pause_ms=pause_ms, timeout=20,
                workdir=tmp_path).start()  # fmt: skip


@needs_sipp
def test_sipp_call_is_seen_live_then_reaches_webhook_history_and_metrics(
    running: Running, receiver: Receiver, tmp_path: Path
) -> None:
    http = running.http
    status, hook = http.json("POST", "/api/v1/webhooks", {"url": receiver.url})
    assert status == 201
    port = free_port()
    assert register(running.pbx, tmp_path, "1002", port).ok
    answering = callee(tmp_path, "uas_answer.xml", port)
    caller = _start_call(running, tmp_path, pause_ms=3000)
    live: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, body = http.json("GET", "/api/v1/calls")
        if body["items"] and body["items"][0]["state"] == "connected":
            live = body["items"]
            break
        time.sleep(0.05)
    assert len(live) == 1, "the call never showed up as connected"
    [call] = live
    assert (call["caller"], call["callee"]) == ("1001", "1002")
    assert [leg["side"] for leg in call["legs"]] == ["caller", "callee"]
    assert all(leg["peer"].startswith("127.0.0.1:") for leg in call["legs"])
    status, one = http.json("GET", f"/api/v1/calls/{call['label']}")
    assert status == 200 and one["call_id"] == call["call_id"]
    assert caller.wait().ok
    assert answering.wait().ok

    received = receiver.wait_for(1)
    ended = [(h, b) for h, b in received if h["X-DeskPBX-Event"] == "call.ended"]
    assert len(ended) == 1
    headers, body = ended[0]
    assert hmac.compare_digest(headers["X-DeskPBX-Signature"], sign(hook["secret"], body))
    event = json.loads(body)
    cdr = event["data"]["cdr"]
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "1002", "ANSWERED")
    assert cdr["x_headers"]["X-Call-Type"] == "sipp-test"
    assert isinstance(cdr["id"], int)
    status, stored = http.json("GET", f"/api/v1/cdrs/{cdr['id']}")
    assert stored["call_id"] == cdr["call_id"]
    _, page = http.json("GET", "/api/v1/cdrs?x_header=x-call-type:sipp-test")
    assert [c["id"] for c in page["items"]] == [cdr["id"]]
    _, _, metrics = http.request("GET", "/metrics")
    lines = metrics.decode().splitlines()
    assert 'deskpbx_calls_total{disposition="ANSWERED"} 1' in lines
    assert "deskpbx_active_calls 0" in lines
    packets_in = next(
        v for v in lines if v.startswith('deskpbx_relay_packets_total{direction="in"}')
    )
    assert int(packets_in.split()[-1]) > 0


@needs_sipp
def test_webhook_gets_ringing_answered_and_ended_in_order(
    running: Running, receiver: Receiver, tmp_path: Path
) -> None:
    http = running.http
    status, hook = http.json("POST", "/api/v1/webhooks", {"url": receiver.url})
    port = free_port()
    assert register(running.pbx, tmp_path, "1002", port).ok
    answering = callee(tmp_path, "uas_answer.xml", port)
    assert _start_call(running, tmp_path, pause_ms=1000).wait().ok
    assert answering.wait().ok
    received = receiver.wait_for(3)
    assert [h["X-DeskPBX-Event"] for h, _ in received] == [
        "call.ringing", "call.answered", "call.ended"
    ]  # fmt: skip
    for headers, body in received:
        assert hmac.compare_digest(headers["X-DeskPBX-Signature"], sign(hook["secret"], body))
    ring, answer, end = (json.loads(body) for _, body in received)
    assert [e["sequence"] for e in (ring, answer, end)] == sorted(
        e["sequence"] for e in (ring, answer, end)
    )
    assert ring["data"]["call"] == answer["data"]["call"] == end["data"]["call"]
    assert (ring["data"]["caller"], ring["data"]["callee"]) == ("1001", "1002")
    assert ring["data"]["x_headers"]["X-Call-Type"] == "sipp-test"
    assert ring["data"]["at"] <= answer["data"]["at"] <= end["data"]["at"]
    cdr = end["data"]["cdr"]
    assert (cdr["disposition"], cdr["hangup_side"], cdr["sip_code"]) == ("ANSWERED", "caller", 200)
    assert cdr["answer"] == answer["data"]["at"]
    _, stored = http.json("GET", f"/api/v1/cdrs/{cdr['id']}")
    assert stored == cdr


@needs_sipp
def test_click_to_call_connects_two_sipp_phones(running: Running, tmp_path: Path) -> None:
    http = running.http
    phones = []
    for number in ("1001", "1002"):
        port = free_port()
        assert register(running.pbx, tmp_path, number, port).ok
        phones.append(callee(tmp_path, "uas_answer.xml", port))
    status, body = http.json(
        "POST",
        "/api/v1/calls",
        {"from": "1001", "to": "1002", "caller_id": "CRM", "x_headers": {"X-Crm-Id": "4711"}},
    )
    assert status == 202
    label = body["label"]
    deadline = time.monotonic() + 10
    state = None
    while time.monotonic() < deadline and state != "connected":
        status, call = http.json("GET", f"/api/v1/calls/{label}")
        state = call.get("state") if status == 200 else None
        time.sleep(0.05)
    assert state == "connected"
    assert http.request("DELETE", f"/api/v1/calls/{label}")[0] == 204
    for phone in phones:
        assert phone.wait().ok
    _, page = http.json("GET", "/api/v1/cdrs?x_header=X-Crm-Id:4711")
    assert [c["disposition"] for c in page["items"]] == ["ANSWERED"]


@needs_sipp
def test_event_stream_sees_the_call_over_websocket(running: Running, tmp_path: Path) -> None:
    import aiohttp

    url = running.api.url + "/api/v1/events"
    got: list[dict[str, Any]] = []
    subscribed = threading.Event()

    async def listen() -> None:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {running.http.token}"}
            async with session.ws_connect(url, headers=headers) as ws:
                subscribed.set()
                async with asyncio.timeout(20):
                    while not got or got[-1]["type"] != "call.ended":
                        got.append(await ws.receive_json())

    listener = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    listener.start()
    assert subscribed.wait(10)
    deadline = time.monotonic() + 5
    while not running.api.ctx.websockets and time.monotonic() < deadline:
        time.sleep(0.02)
    port = free_port()
    assert register(running.pbx, tmp_path, "1002", port).ok
    answering = callee(tmp_path, "uas_answer.xml", port)
    assert _start_call(running, tmp_path, pause_ms=500).wait().ok
    assert answering.wait().ok
    listener.join(20)
    assert [e["type"] for e in got][-1] == "call.ended"
    assert got[-1]["data"]["cdr"]["disposition"] == "ANSWERED"
    assert [e["type"] for e in got] == ["call.ringing", "call.answered", "call.ended"]
