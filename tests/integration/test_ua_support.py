"""Helpers for the user agent's integration tests: UAs on 127.0.0.1 against a real PBX.

`Phone` is a started `UserAgent` with its events collected; `wait_event`
polls the collected events on the test's loop, bounded in time.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pbx.ua import Account, UserAgent
from pbx.ua.events import UaEvent
from tests.integration.pbx_harness import PASSWORDS

E = TypeVar("E")

_blocks = itertools.count(random.randrange(0, 40))


def ua_rtp_block(size: int = 40) -> tuple[int, int]:
    """An RTP range for one UA: 21000-28999, below the peers' ports free_port() hands out
    (29000-32767), the kernel's ephemeral ports and the PBX harness's RTP area."""
    low = 21000 + (next(_blocks) * size) % 8000
    return low, low + size - 1


@dataclass
class Phone:
    ua: UserAgent
    events: list[UaEvent] = field(default_factory=list)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_event(
        self, kind: type[E], predicate: Callable[[E], bool] = lambda e: True, timeout: float = 5.0
    ) -> E:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            found = [e for e in self.of(kind) if predicate(e)]
            if found:
                return found[0]
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {kind.__name__} in {timeout} s; events: {self.events}")


async def start_phone(user: str, server_port: int, **kwargs: Any) -> Phone:
    phone = Phone(None)  # type: ignore[arg-type]
    password = kwargs.pop("password", PASSWORDS.get(user, "x"))
    account = Account(user, password, "127.0.0.1", server_port, kwargs.pop("transport", "UDP"))
    phone.ua = UserAgent(account, ("127.0.0.1", 0), phone.events.append, ua_rtp_block(), **kwargs)
    await phone.ua.start()
    return phone
