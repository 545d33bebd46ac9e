"""Webhooks: registration over the API, signed delivery, back-off retries, bounded queues."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pbx.api import webhooks as webhooks_module
from pbx.api.events import (
    CallAnswered,
    CallEnded,
    CallEventSource,
    CallRinging,
    EventBus,
    RecordingReady,
)
from pbx.api.webhooks import WebhookDispatcher, sign, verify
from pbx.store.api import Webhook
from tests.unit.test_api_fakes import WALL, Api, FakeCall, api_fixture  # noqa: F401

PROBLEM = "application/problem+json"
SECRET = "s3cret-s3cret-s3cret"


@dataclass
class Receiver:
    server: TestServer
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 200
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/hook"))

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    holder: list[Receiver] = []

    async def hook(request: web.Request) -> web.Response:
        me = holder[0]
        me.received.append((dict(request.headers), await request.read()))
        return web.Response(status=me.statuses.pop(0) if me.statuses else 200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    holder.append(Receiver(server))
    yield holder[0]
    await server.close()


def hook(url: str, events: tuple[str, ...] = ()) -> Webhook:
    return Webhook(1, url, SECRET, events, "", WALL)


def ringing(label: str = "c1") -> CallRinging:
    return CallRinging(call=label, call_id=f"{label}@x", caller="1001", callee="1002", at=WALL)


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    assert sign("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert verify("Jefe", b"what do ya want for nothing?", sign("Jefe", b"what do ya want for "
                  b"nothing?"))  # fmt: skip
    assert not verify("Jefe", b"tampered", sign("Jefe", b"what do ya want for nothing?"))


async def test_delivers_signed_events_in_order(receiver: Receiver) -> None:
    dispatcher = WebhookDispatcher()
    dispatcher.set_webhooks([hook(receiver.url)])
    bus = EventBus()
    bus.subscribe(dispatcher.deliver)
    bus.publish(ringing())
    bus.publish(CallAnswered(call="c1", call_id="c1@x", caller="1001", callee="1002", at=WALL))
    bus.publish(CallEnded(call="c1", call_id="c1@x", caller="1001", callee="1002", at=WALL + 9,
                          cdr={"id": 7, "disposition": "ANSWERED"}))  # fmt: skip
    assert await dispatcher.drain(5.0)
    await dispatcher.close()
    assert [b["type"] for b in receiver.bodies()] == ["call.ringing", "call.answered", "call.ended"]
    assert [b["sequence"] for b in receiver.bodies()] == [1, 2, 3]
    assert receiver.bodies()[2]["data"]["cdr"] == {"id": 7, "disposition": "ANSWERED"}
    for headers, body in receiver.received:
        assert headers["Content-Type"] == "application/json"
        assert verify(SECRET, body, headers["X-DeskPBX-Signature"])
    assert receiver.received[0][0]["X-DeskPBX-Event"] == "call.ringing"
    assert dispatcher.stats["delivered"] == 3


async def test_retries_5xx_with_backoff_then_succeeds(receiver: Receiver) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    receiver.statuses = [500, 503, 429]
    dispatcher = WebhookDispatcher(sleep=fake_sleep)
    dispatcher.set_webhooks([hook(receiver.url)])
    dispatcher.deliver(ringing(), 1)
    assert await dispatcher.drain(5.0)
    await dispatcher.close()
    assert slept == [1.0, 2.0, 4.0]
    assert len(receiver.received) == 4
    assert len({body for _, body in receiver.received}) == 1  # the same body each time
    assert dispatcher.stats == {"delivered": 1, "retried": 3, "failed": 0, "dropped": 0}


async def test_gives_up_after_the_last_backoff(receiver: Receiver) -> None:
    async def no_sleep(seconds: float) -> None:
        return None

    receiver.statuses = [500] * 10
    dispatcher = WebhookDispatcher(sleep=no_sleep, backoff=(1.0, 2.0))
    dispatcher.set_webhooks([hook(receiver.url)])
    dispatcher.deliver(ringing(), 1)
    assert await dispatcher.drain(5.0)
    await dispatcher.close()
    assert len(receiver.received) == 3
    assert dispatcher.stats["failed"] == 1


async def test_a_4xx_refusal_is_not_retried(receiver: Receiver) -> None:
    receiver.statuses = [410]
    dispatcher = WebhookDispatcher()
    dispatcher.set_webhooks([hook(receiver.url)])
    dispatcher.deliver(ringing(), 1)
    assert await dispatcher.drain(5.0)
    await dispatcher.close()
    assert len(receiver.received) == 1
    assert dispatcher.stats["failed"] == 1


async def test_unreachable_receiver_is_retried_without_blocking_publish() -> None:
    attempts: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        attempts.append(seconds)

    from tests.integration.ports import free_port

    dispatcher = WebhookDispatcher(sleep=fake_sleep, backoff=(1.0,), timeout=2.0)
    dispatcher.set_webhooks([hook(f"http://127.0.0.1:{free_port()}/gone")])
    dispatcher.deliver(ringing(), 1)
    assert await dispatcher.drain(5.0)
    await dispatcher.close()
    assert attempts == [1.0]
    assert dispatcher.stats["failed"] == 1


async def test_full_queue_drops_instead_of_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks_module, "QUEUE_SIZE", 3)
    dispatcher = WebhookDispatcher()
    dispatcher.set_webhooks([hook("http://127.0.0.1:9/never")])
    for n in range(10):  # no await in between: the worker has not taken any yet
        dispatcher.deliver(ringing(), n)
    assert dispatcher.stats["dropped"] == 7
    assert dispatcher.pending() == 3
    await dispatcher.close()


async def test_event_filter_and_removal(receiver: Receiver) -> None:
    dispatcher = WebhookDispatcher()
    dispatcher.set_webhooks([hook(receiver.url, events=("call.ended",))])
    dispatcher.deliver(ringing(), 1)
    assert dispatcher.pending() == 0
    dispatcher.set_webhooks([])
    dispatcher.deliver(ringing(), 2)
    assert dispatcher.pending() == 0
    await dispatcher.close()
    assert receiver.received == []


def test_bus_keeps_going_when_a_subscriber_fails() -> None:
    bus = EventBus()
    got: list[int] = []

    def broken(event: object, sequence: int) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    unsubscribe = bus.subscribe(lambda event, sequence: got.append(sequence))
    bus.publish(ringing())
    unsubscribe()
    bus.publish(ringing())
    assert got == [1]
    assert bus.published == {"call.ringing": 2}


def test_call_event_source_maps_states_once_and_ends_with_the_stored_cdr(tmp_path) -> None:
    from pbx.call import CallState
    from pbx.store import Store

    store = Store.in_dir(tmp_path)
    bus = EventBus()
    events: list[object] = []
    bus.subscribe(lambda event, sequence: events.append(event))
    source = CallEventSource(bus, lambda: WALL + 1)
    b2bua = type("B", (), {"on_call_ended": None, "on_call_state": None})()
    source.attach(b2bua)
    call = FakeCall("c9", "1001", "1002", x_headers={"X-Crm-Id": "5"})
    call.state = CallState.EARLY_MEDIA
    b2bua.on_call_state(call)
    call.state = CallState.RINGING
    b2bua.on_call_state(call)  # 183 then 180: still one ringing event
    call.state, call.answer = CallState.CONNECTED, WALL + 2
    b2bua.on_call_state(call)
    stored = store.add_cdr(call.to_cdr())
    call.cdr_id = stored.id  # what B2bua._finish does with the stored row
    b2bua.on_call_ended(call)
    assert [type(e).__name__ for e in events] == ["CallRinging", "CallAnswered", "CallEnded"]
    assert events[0] == CallRinging(call="c9", call_id="c9@test", caller="1001", callee="1002",
                                    at=WALL + 1, x_headers={"X-Crm-Id": "5"})  # fmt: skip
    assert events[1].at == WALL + 2  # type: ignore[attr-defined]  # the CDR's answer time
    assert events[2].cdr == stored.to_public_dict()  # type: ignore[attr-defined]
    assert events[2].cdr["id"] == stored.id  # type: ignore[attr-defined]
    store.close()


def test_call_ended_names_a_queued_cdr_without_writing_the_batch(tmp_path) -> None:
    """The B2BUA queues an unrecorded call's CDR (written within 100 ms, in a batch); the
    event carries the id the row gets, and publishing it does not force the batch out."""
    from pbx.store import Store

    store = Store.in_dir(tmp_path, cdr_batch=3600.0)
    reader = Store.in_dir(tmp_path)  # another connection sees what is written
    bus = EventBus()
    events: list[object] = []
    bus.subscribe(lambda event, sequence: events.append(event))
    b2bua = type("B", (), {"on_call_ended": None, "on_call_state": None})()
    CallEventSource(bus, lambda: WALL + 1).attach(b2bua)
    call = FakeCall("c7", "1001", "1002", answer=WALL + 2)
    call.cdr_id = store.queue_cdr(call.to_cdr()).id
    b2bua.on_call_ended(call)
    assert reader.query_cdrs() == []  # the batch still waits
    [ended] = events
    assert ended.cdr["id"] == call.cdr_id  # type: ignore[attr-defined]
    assert store.get_cdr(call.cdr_id).to_public_dict() == ended.cdr  # type: ignore[attr-defined, union-attr]
    reader.close()
    store.close()


async def test_webhooks_over_the_api(api: Api, receiver: Receiver) -> None:
    response = await api.post("/api/v1/webhooks", json={"url": receiver.url,
                              "events": ["call.ringing"], "description": "CRM"})  # fmt: skip
    assert response.status == 201
    created = await response.json()
    secret = created["secret"]
    assert len(secret) == 64
    assert response.headers["Location"] == f"/api/v1/webhooks/{created['id']}"
    listing = await (await api.get("/api/v1/webhooks")).json()
    assert listing["items"] == [{"id": created["id"], "url": receiver.url,
                                 "events": ["call.ringing"], "description": "CRM",
                                 "created": WALL}]  # fmt: skip
    api.ctx.bus.publish(ringing())
    assert await api.ctx.webhooks.drain(5.0)
    [(headers, body)] = receiver.received
    assert verify(secret, body, headers["X-DeskPBX-Signature"])
    assert (await api.delete(f"/api/v1/webhooks/{created['id']}")).status == 204
    assert (await api.get(f"/api/v1/webhooks/{created['id']}")).status == 404
    api.ctx.bus.publish(ringing())
    assert api.ctx.webhooks.pending() == 0


async def test_webhook_validation(api: Api) -> None:
    response = await api.post(
        "/api/v1/webhooks",
        json={"url": "ftp://example.org/x", "secret": "short", "events": ["call.exploded"]},
    )
    body = await response.json(content_type=PROBLEM)
    assert response.status == 422
    assert {e["field"] for e in body["errors"]} == {"url", "secret", "events"}
    assert (await api.get("/api/v1/webhooks/abc")).status == 404


def test_recording_ready_is_published_when_the_manager_finishes_a_file() -> None:
    from pbx.store.recordings import Recording

    bus = EventBus()
    events: list[object] = []
    bus.subscribe(lambda event, sequence: events.append(event))
    earlier: list[str] = []
    manager = SimpleNamespace(on_finished=lambda label, rec: earlier.append(label))
    b2bua = type("B", (), {"on_call_ended": None})()
    CallEventSource(bus, lambda: WALL + 5).attach(b2bua, manager)
    row = Recording(id=3, call_id="c9@x", path="/data/recordings/2027/01/01/c9.wav",
                    start=WALL, duration=12.5, size=200_044, sha256="ab" * 32,
                    complete=True)  # fmt: skip
    manager.on_finished("c9", row)
    assert earlier == ["c9"]  # the manager's previous hook still runs
    assert events == [
        RecordingReady(
            call="c9", call_id="c9@x", recording_id=3,
            path="/data/recordings/2027/01/01/c9.wav", duration=12.5, size=200_044,
            sha256="ab" * 32, at=WALL + 5,
        )
    ]  # fmt: skip
