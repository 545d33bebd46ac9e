"""The SIP UDP sockets' receive buffer (pbx.net.udp): asked for at bind, read back, and a
burst that arrives while the loop is busy waits in it instead of being dropped."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from pathlib import Path

import pytest

from pbx.config import PbxConfig
from pbx.net.transport import Listen, TransportManager
from pbx.net.udp import effective_receive_buffer
from pbx.server import Pbx

pytestmark = pytest.mark.integration

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="sizes and caps checked as Linux reports them"
)


def _rmem_max() -> int:
    try:
        return int(Path("/proc/sys/net/core/rmem_max").read_text())
    except (OSError, ValueError) as exc:
        pytest.skip(f"net.core.rmem_max is not readable here: {exc}")


def _system_default() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return effective_receive_buffer(sock)


async def _manager(receive_buffer: int, on_data=lambda *a: None) -> TransportManager:
    loop = asyncio.get_running_loop()
    manager = TransportManager(loop, on_data, [Listen("127.0.0.1", 0, ("UDP",))],
                               udp_receive_buffer=receive_buffer)  # fmt: skip
    await manager.start()
    return manager


@linux_only
async def test_the_size_asked_for_is_granted_below_the_cap() -> None:
    wanted = 96 * 1024
    assert wanted <= _rmem_max()
    manager = await _manager(wanted)
    try:
        [granted] = manager.udp_receive_buffers.values()
        assert granted == wanted
    finally:
        await manager.close()


async def test_zero_keeps_the_system_default() -> None:
    manager = await _manager(0)
    try:
        [granted] = manager.udp_receive_buffers.values()
        assert granted == _system_default()
    finally:
        await manager.close()


@linux_only
async def test_a_burst_while_the_loop_is_busy_is_kept() -> None:
    """2,000 REGISTER-sized datagrams sent while the loop is blocked (a long collection, a
    slow callback): with the default buffer most are dropped, with 4 MiB (where the system
    allows it) all of them arrive once the loop runs again."""
    wanted = 4 * 1024 * 1024
    if _rmem_max() < wanted:
        pytest.skip(f"net.core.rmem_max is {_rmem_max()}: the system caps the buffer below 4 MiB")
    counts = {}
    for size in (0, wanted):
        arrived: list[bytes] = []
        manager = await _manager(size, lambda data, *rest, into=arrived: into.append(data))
        try:
            [address] = manager.addresses["UDP"]
            payload = b"REGISTER sip:pbx SIP/2.0\r\n" + b"x" * 470
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for _ in range(2_000):  # the loop does not run during this loop
                    sender.sendto(payload, address)
            deadline = time.monotonic() + 5
            while len(arrived) < 2_000 and time.monotonic() < deadline:
                before = len(arrived)
                await asyncio.sleep(0.05)
                if len(arrived) == before and arrived:
                    break  # nothing more is coming
            counts[size] = len(arrived)
        finally:
            await manager.close()
    assert counts[wanted] == 2_000
    assert counts[0] < 2_000, "the system default held the whole burst: nothing to show"


@linux_only
async def test_the_pbx_asks_for_4_mib_and_says_when_the_system_grants_less(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    default = PbxConfig(data_dir=tmp_path).udp_receive_buffer
    assert default == 4 * 1024 * 1024
    for wanted, warned in ((default, None), (_rmem_max() * 2, True)):
        (tmp_path / str(wanted)).mkdir()
        config = PbxConfig(
            data_dir=tmp_path / str(wanted), listen=(Listen("127.0.0.1", 0, ("UDP",)),),
            rtp_ports=(42000, 42099), qualify_interval=0, http=None, udp_receive_buffer=wanted,
        )  # fmt: skip
        pbx = Pbx(config)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pbx.server"):
            await pbx.start()
        try:
            assert pbx.endpoint is not None
            [granted] = pbx.endpoint.transports.udp_receive_buffers.values()
            assert granted == min(wanted, _rmem_max())
            said = [r.getMessage() for r in caplog.records if "receive buffer" in r.getMessage()]
            if granted < wanted:
                assert said and f"{granted // 1024} KiB" in said[0] and "rmem_max" in said[0]
            else:
                assert not said
            if warned:
                assert said
        finally:
            await pbx.aclose()
