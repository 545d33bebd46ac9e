"""A Pbx-like double for the HTTP API unit tests: a real store in a temp dir, fake calls.

Imported by the tests/unit/test_api_*.py modules; it holds no tests itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pbx.api.app import build_app, make_context
from pbx.api.auth import new_token, token_hash
from pbx.api.context import ApiContext
from pbx.api.webhooks import WebhookDispatcher
from pbx.auth_ban import AuthBans
from pbx.call import CallState
from pbx.net.dns import Locator
from pbx.store import Cdr, Disposition, Store

WALL = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float = WALL) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeCall:
    label: str
    caller: str
    callee: str
    state: CallState = CallState.RINGING
    start: float = WALL
    answer: float | None = None
    x_headers: dict[str, str] = field(default_factory=dict)
    a_dialog: Any = None
    b_dialog: Any = None
    a_peer: Any = field(
        default_factory=lambda: SimpleNamespace(destination=("127.0.0.1", 5070), transport="UDP")
    )
    b_peer: Any = None
    relay: Any = None
    forks: int = 1
    cdr_id: int | None = None

    @property
    def a_invite(self) -> Any:
        return SimpleNamespace(call_id=f"{self.label}@test")

    def pending_forks(self) -> list[object]:
        return [object()] * self.forks

    def to_cdr(self) -> Cdr:
        return Cdr.from_times(
            call_id=self.a_invite.call_id, caller=self.caller, callee=self.callee,
            start=self.start, answer=self.answer, end=self.start + 30,
            disposition=Disposition.ANSWERED, x_headers=dict(self.x_headers), id=self.cdr_id,
        )  # fmt: skip


class FakeB2bua:
    """Calls by label; action methods are added per test with `enable()`."""

    def __init__(self) -> None:
        self.calls: dict[str, Any] = {}
        self.actions: list[tuple[Any, ...]] = []
        self.on_call_ended: Callable[[Any], None] | None = None

    def enable(self, name: str, result: Any = None, error: Exception | None = None) -> None:
        def method(*args: Any) -> Any:
            self.actions.append((name, *args))
            if error is not None:
                raise error
            return result

        setattr(self, name, method)


class FakePbx:
    def __init__(self, data_dir: Path, wall: FakeClock) -> None:
        self.config = SimpleNamespace(data_dir=data_dir)
        self.store = Store.in_dir(data_dir)
        self.b2bua = FakeB2bua()
        self.wall = wall
        self.bans = AuthBans(after=2, exempt=())

    def monotonic(self) -> float:
        return self.wall()

    def status(self) -> dict[str, object]:
        return {"version": "0.1.0", "uptime": 12.5, "active_calls": len(self.b2bua.calls),
                "registered": 2,
                "call_limits": {"max_calls": 10, "max_call_rate": 0.0, "refused_full": 3,
                                "refused_rate": 0},
                "media_timeout": {"seconds": 60.0, "ended": 2},
                "dialog_ping": {"seconds": 0.0, "ended": 3},
                "session_timers": {"min_se": 90, "active": 1, "ended": 1},
                "auth_bans": self.bans.stats(self.monotonic()),
                "dns": Locator([("192.0.2.53", 53)]).stats()}  # fmt: skip


@dataclass
class Api:
    client: TestClient
    ctx: ApiContext
    pbx: FakePbx
    token: str
    clock: FakeClock

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.client.get(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.client.post(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    async def patch(self, path: str, **kw: Any) -> Any:
        return await self.client.patch(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.client.delete(path, headers={**self.auth, **kw.pop("headers", {})}, **kw)


def add_cdr(store: Store, start: float, caller: str = "1001", callee: str = "1002",
            disposition: Disposition = Disposition.ANSWERED, **rest: Any) -> Cdr:  # fmt: skip
    answer = start + 2 if disposition is Disposition.ANSWERED else None
    return store.add_cdr(
        Cdr.from_times(call_id=f"c{start}", caller=caller, callee=callee, start=start,
                       answer=answer, end=start + 10, disposition=disposition, **rest)
    )  # fmt: skip


@pytest.fixture(name="api")
async def api_fixture(tmp_path: Path) -> AsyncIterator[Api]:
    clock = FakeClock()
    pbx = FakePbx(tmp_path, clock)
    token = new_token()
    pbx.store.add_api_token("test", token_hash(token), clock())
    ctx = make_context(pbx, webhooks=WebhookDispatcher(backoff=(0.0, 0.0)), wall=clock)
    client = TestClient(TestServer(build_app(ctx), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Api(client, ctx, pbx, token, clock)
    finally:
        await client.close()
        await ctx.webhooks.close()
        pbx.store.close()
