"""A real PBX on 127.0.0.1 for integration tests: its own thread, loop, data dir and ports."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pbx.config import PbxConfig
from pbx.net.transport import Listen
from pbx.server import Pbx, run_in_thread
from pbx.store import Cdr, Store
from tests.integration.ports import RTP_AREA, free_port

PASSWORDS = {f"100{i}": f"secret-100{i}" for i in range(1, 10)}

# RTP ranges handed to PBXes of one test run, so parallel PBXes never collide; the
# first block depends on the process, so two test runs side by side rarely share one.
_rtp_blocks = itertools.count(os.getpid() % 100)


def rtp_block(size: int = 200) -> tuple[int, int]:
    low = RTP_AREA.start + (next(_rtp_blocks) * size) % len(RTP_AREA)
    return low, low + size - 1


@dataclass
class RunningPbx:
    pbx: Pbx
    loop: asyncio.AbstractEventLoop
    thread: Any
    data_dir: Path
    port: int
    stopped: bool = field(default=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, fn: Callable[[], Any]) -> Any:
        """Call `fn` on the PBX's loop thread and return its result."""

        async def call() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def cdrs(self) -> list[Cdr]:
        with Store.in_dir(self.data_dir) as store:
            return store.query_cdrs(limit=1000)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise TimeoutError("condition not met in time")

    def wait_cdrs(self, count: int, timeout: float = 10.0) -> list[Cdr]:
        self.wait_for(lambda: len(self.cdrs()) >= count, timeout)
        return self.cdrs()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        asyncio.run_coroutine_threadsafe(self.pbx.aclose(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def start_pbx(data_dir: Path, **overrides: Any) -> RunningPbx:
    """Start a PBX with extensions 1001-1009 (password secret-NNNN) on a free port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with Store.in_dir(data_dir) as store:
        for number, password in PASSWORDS.items():
            if store.find_extension(number) is None:
                store.add_extension(number, password, f"Phone {number}")
    port = free_port()
    config = PbxConfig(
        data_dir=data_dir,
        listen=(Listen("127.0.0.1", port),),
        rtp_ports=rtp_block(),
        qualify_interval=0,
        auth_algorithms=("MD5",),  # SIPp answers MD5 digest only
    )
    config = replace(config, **overrides)
    loop, pbx, thread = run_in_thread(config)
    return RunningPbx(pbx, loop, thread, data_dir, port)
