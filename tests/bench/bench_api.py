"""HTTP API figures: the cost of publishing a call event, and CDR history pages on a big table.

`publish` is what the B2BUA pays per call event with webhooks and WebSocket
clients attached (serialisation and queueing only; delivery happens later on
worker tasks), so it bounds how much the API can slow call handling. CDR
pages are timed through the real aiohttp app (loopback HTTP, auth, JSON)
against a database of CDR_ROWS calls. Loops are bounded in count and time.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from aiohttp.test_utils import TestClient, TestServer

from pbx.api import webhooks as webhooks_module
from pbx.api.app import build_app, make_context
from pbx.api.auth import new_token, token_hash
from pbx.api.events import CallEnded
from pbx.api.webhooks import WebhookDispatcher
from pbx.store import Store
from pbx.store.api import Webhook
from tests.bench.rows import Row

COMMAND = ".venv/bin/python -m tests.bench api"
T0 = 1_800_000_000.0


def _fill(path: Path, rows: int) -> None:
    """Bulk CDRs straight into the file (the store's one-commit-per-call insert is not timed)."""
    conn = sqlite3.connect(path)
    conn.executemany(
        'INSERT INTO cdrs (call_id, caller, callee, start, answer, "end", duration, billsec, '
        "disposition, sip_code, hangup_side, x_headers) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            (f"c{i}", str(1000 + i % 500), "0612345678", T0 + i, T0 + i + 3, T0 + i + 60,
             60.0, 57.0, "ANSWERED", 200, "caller", f'{{"X-Crm-Id": "{i}"}}')
            for i in range(rows)
        ),
    )  # fmt: skip
    conn.commit()
    conn.close()


class _Pbx:
    def __init__(self, data_dir: Path) -> None:
        self.config = SimpleNamespace(data_dir=data_dir)
        self.store = Store.in_dir(data_dir)
        self.b2bua = SimpleNamespace(calls={})

    def status(self) -> dict[str, object]:
        return {"version": "bench", "uptime": 1.0, "active_calls": 0, "registered": 0}


async def _publish_rate(count: int, budget: float) -> float:
    """Events per second through EventBus.publish with two webhooks attached."""
    webhooks_module.QUEUE_SIZE = count + 1  # measure queueing, not dropping
    dispatcher = WebhookDispatcher()
    hooks = [Webhook(i, f"http://127.0.0.1:9/{i}", "secret" * 4, (), "", T0) for i in (1, 2)]
    dispatcher.set_webhooks(hooks)
    cdr = {
        "id": 1,
        "caller": "1001",
        "callee": "1002",
        "disposition": "ANSWERED",
        "x_headers": {"X-Crm-Id": "1"},
        "media_stats": {"caller": {"packets_in": 3000}},
    }
    event = CallEnded(call="c", call_id="c@x", caller="1001", callee="1002", at=T0, cdr=cdr)
    started = time.perf_counter()
    done = 0
    while done < count and time.perf_counter() - started < budget:
        dispatcher.deliver(event, done)
        done += 1
    rate = done / (time.perf_counter() - started)
    for target in dispatcher._targets.values():
        target.task.cancel()
    return rate


async def _timed(client: TestClient, path: str, headers: dict[str, str], count: int,
                 budget: float) -> float:  # fmt: skip
    """Median milliseconds of GET path."""
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < count and time.perf_counter() - started < budget:
        t = time.perf_counter()
        response = await client.get(path, headers=headers)
        await response.read()
        assert response.status == 200, path
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return times[len(times) // 2]


async def _pages(rows: int, count: int, budget: float) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        pbx = _Pbx(Path(tmp))
        _fill(pbx.store.path, rows)
        token = new_token()
        pbx.store.add_api_token("bench", token_hash(token), T0)
        ctx = make_context(pbx)
        client = TestClient(TestServer(build_app(ctx), host="127.0.0.1"))
        await client.start_server()
        auth = {"Authorization": f"Bearer {token}"}
        try:
            first = await (await client.get("/api/v1/cdrs?limit=50", headers=auth)).json()
            cursor = first["next_cursor"]
            paths = {
                "status": "/api/v1/status",
                "newest 50": "/api/v1/cdrs?limit=50",
                "next page (cursor)": f"/api/v1/cdrs?limit=50&cursor={cursor}",
                "caller filter": "/api/v1/cdrs?limit=50&caller=1007",
                "x_header filter (scan)": f"/api/v1/cdrs?limit=50&x_header=X-Crm-Id:{rows // 2}",
            }
            return [(name, await _timed(client, p, auth, count, budget))
                    for name, p in paths.items()]  # fmt: skip
        finally:
            await client.close()
            await ctx.webhooks.close()
            pbx.store.close()


def run(quick: bool) -> list[Row]:
    count, budget, rows = (2_000, 0.5, 20_000) if quick else (50_000, 3.0, 100_000)
    loop = asyncio.new_event_loop()
    try:
        rate = loop.run_until_complete(_publish_rate(count, budget))
        pages = loop.run_until_complete(_pages(rows, 30 if quick else 200, budget))
    finally:
        loop.close()
    out = [
        Row("API event publish, 2 webhooks", rate, "events/s", ">= 20,000 events/s",
            rate >= 20_000, "serialise + queue per event; delivery is off the call path",
            COMMAND),
    ]  # fmt: skip
    for name, ms in pages:
        goal = 100.0 if "scan" in name else 20.0
        out.append(Row(f"API GET {name}, {rows:,} CDRs", ms, "ms median", f"<= {goal:g} ms",
                       ms <= goal, "loopback HTTP through auth and JSON", COMMAND))  # fmt: skip
    return out
