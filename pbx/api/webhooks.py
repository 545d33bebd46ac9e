"""Webhook delivery: signed POSTs of call events, retried with back-off, never blocking calls.

Each webhook has its own bounded queue and one worker task, so events reach a
receiver in the order they happened (ringing, answered, ended) and a receiver
that is down delays nobody else. `deliver()` is the bus subscriber: it only
`put_nowait`s; when a receiver's queue is full the event is dropped for it and
counted (`stats["dropped"]`), because holding SIP handling for a CRM is worse
than a missed notification that the CDR API can fill in.

A delivery is `POST url` with the JSON event as body and the headers
  X-DeskPBX-Event: call.answered
  X-DeskPBX-Delivery: <sequence>
  X-DeskPBX-Signature: sha256=<hex HMAC-SHA256(secret, body)>   (RFC 2104)
A 2xx ends it; a network error, timeout, 408, 429 or 5xx is retried after
BACKOFF[attempt] seconds (1, 2, 4, 8, 16: about half a minute in all); any
other 4xx means the receiver refuses it and retrying cannot help.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from pbx.api.events import CallEvent, event_to_json
from pbx.store.api import Webhook

log = logging.getLogger(__name__)

BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)
QUEUE_SIZE = 256
TIMEOUT = 5.0
RETRY_STATUSES = frozenset({408, 425, 429})

Sleep = Callable[[float], Awaitable[None]]


def sign(secret: str, body: bytes) -> str:
    """The X-DeskPBX-Signature value a receiver recomputes to trust a delivery."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does (constant-time compare); used by the tests too."""
    return hmac.compare_digest(sign(secret, body), signature)


@dataclass(frozen=True, slots=True)
class Delivery:
    event_type: str
    sequence: int
    body: bytes


class _Target:
    def __init__(self, webhook: Webhook, task_factory: Callable[[_Target], asyncio.Task[None]]):
        self.webhook = webhook
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue(QUEUE_SIZE)
        self.task = task_factory(self)


class WebhookDispatcher:
    """Owns one aiohttp client session and one worker per configured webhook."""

    def __init__(
        self,
        *,
        backoff: tuple[float, ...] = BACKOFF,
        timeout: float = TIMEOUT,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.backoff = backoff
        self.timeout = timeout
        self.sleep = sleep
        self.stats = {"delivered": 0, "retried": 0, "failed": 0, "dropped": 0}
        self._targets: dict[int, _Target] = {}
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"User-Agent": "DeskPBX-Webhook"},
            )
        return self._session

    def set_webhooks(self, webhooks: list[Webhook]) -> None:
        """Follow the configured list: start workers for new hooks, stop removed ones."""
        wanted = {hook.id: hook for hook in webhooks}
        for hook_id in [i for i in self._targets if i not in wanted]:
            self._targets.pop(hook_id).task.cancel()
        for hook_id, hook in wanted.items():
            target = self._targets.get(hook_id)
            if target is None:
                self._targets[hook_id] = _Target(hook, self._spawn)
            else:
                target.webhook = hook

    def _spawn(self, target: _Target) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self._work(target))

    def deliver(self, event: CallEvent, sequence: int) -> None:
        """Bus subscriber: queue the event for every webhook that wants it; never waits."""
        if not self._targets:
            return
        body = json.dumps(event_to_json(event, sequence), separators=(",", ":")).encode()
        delivery = Delivery(event.type, sequence, body)
        for target in self._targets.values():
            if not target.webhook.wants(event.type):
                continue
            try:
                target.queue.put_nowait(delivery)
            except asyncio.QueueFull:
                self.stats["dropped"] += 1
                log.warning("webhook %d is behind: dropped %s", target.webhook.id, event.type)

    def pending(self) -> int:
        return sum(t.queue.qsize() for t in self._targets.values())

    async def _work(self, target: _Target) -> None:
        while True:
            delivery = await target.queue.get()
            try:
                await self._deliver_with_retries(target, delivery)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not kill the worker
                log.exception("webhook %d: delivery crashed", target.webhook.id)
            finally:
                target.queue.task_done()

    async def _deliver_with_retries(self, target: _Target, delivery: Delivery) -> None:
        for attempt in range(len(self.backoff) + 1):
            outcome = await self._post(target.webhook, delivery)
            if outcome == "ok":
                self.stats["delivered"] += 1
                return
            if outcome == "refused" or attempt == len(self.backoff):
                break
            self.stats["retried"] += 1
            await self.sleep(self.backoff[attempt])
        self.stats["failed"] += 1
        log.warning(
            "webhook %d (%s): gave up on %s #%d",
            target.webhook.id, target.webhook.url, delivery.event_type, delivery.sequence,
        )  # fmt: skip

    async def _post(self, hook: Webhook, delivery: Delivery) -> str:
        """'ok', 'retry' or 'refused' for one attempt."""
        headers = {
            "Content-Type": "application/json",
            "X-DeskPBX-Event": delivery.event_type,
            "X-DeskPBX-Delivery": str(delivery.sequence),
            "X-DeskPBX-Signature": sign(hook.secret, delivery.body),
        }
        try:
            async with self._session_now().post(
                hook.url, data=delivery.body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("webhook %d: %s: %s", hook.id, type(exc).__name__, exc)
            return "retry"
        if 200 <= status < 300:
            return "ok"
        if status >= 500 or status in RETRY_STATUSES:
            return "retry"
        return "refused"

    async def drain(self, timeout: float) -> bool:
        """Wait until every queue is empty (tests, shutdown); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                for target in list(self._targets.values()):
                    await target.queue.join()
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        tasks = [t.task for t in self._targets.values()]
        self._targets.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
