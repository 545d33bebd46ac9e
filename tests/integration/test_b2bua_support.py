"""Helpers shared by the B2BUA integration tests (this module holds no tests).

Phones are SIPp processes on 127.0.0.1: a callee registers from its own port
and then runs a server-mode scenario on that port; a caller runs a client
scenario against the PBX. Scenario placeholders (RELAY_PORTS, REJECT_CODE, ...)
are filled in by `scenario(..., KEY=value)`.
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from pbx.call import Call
from tests.integration.pbx_harness import PASSWORDS, RunningPbx
from tests.integration.peers.sipp import SIPP, Sipp, SippResult, auth_field, scenario, write_csv
from tests.integration.ports import free_port

needs_sipp = pytest.mark.skipif(
    SIPP is None, reason="sipp not installed (Debian package sip-tester)"
)


def register(
    pbx: RunningPbx, tmp_path: Path, user: str, port: int, contact: str | None = None
) -> SippResult:
    """REGISTER `user` from 127.0.0.1:`port`, Contact sip:user@`contact` (default: that port)."""
    row = [user, auth_field(user, PASSWORDS[user]), contact or f"127.0.0.1:{port}", "300"]
    csv = write_csv([row], tmp_path)
    return Sipp(scenario("register.xml", tmp_path), pbx.address, local_port=port, inject=csv,
                timeout=10, workdir=tmp_path).start().wait()  # fmt: skip


def callee(
    tmp_path: Path, name: str, port: int, *, calls: int = 1, timeout: float = 20,
    media_port: int | None = None, auto_answer: bool = True, **subst: str,
) -> Sipp:  # fmt: skip
    """A server-mode SIPp on `port` (registered there beforehand) running scenario `name`.

    `auto_answer` (-aa) lets SIPp answer INFO/UPDATE/OPTIONS by itself; turn it off when
    the scenario checks those requests.
    """
    return Sipp(scenario(name, tmp_path, **subst), None, local_port=port,
                media_port=media_port or free_port(step=4), calls=calls, timeout=timeout,
                extra=("-aa",) if auto_answer else (), workdir=tmp_path).start()  # fmt: skip


def caller(
    pbx: RunningPbx, tmp_path: Path, name: str, user: str, number: str, *,
    pause_ms: int = 1500, calls: int = 1, rate: float | None = None,
    limit: int | None = None, timeout: float = 20, **subst: str,
) -> Sipp:  # fmt: skip
    """A client SIPp calling `number` as `user` through the PBX (started, not awaited)."""
    csv = write_csv([[user, auth_field(user, PASSWORDS[user]), number]], tmp_path)
    return Sipp(scenario(name, tmp_path, **subst), pbx.address, local_port=free_port(),
                media_port=free_port(step=4), inject=csv, pause_ms=pause_ms, calls=calls,
                rate=rate, limit=limit, timeout=timeout, workdir=tmp_path).start()  # fmt: skip


def relay_ports_regexp(pbx: RunningPbx) -> str:
    """A regexp alternation of every RTP port the PBX's relay may put in an SDP m= line."""
    low, high = pbx.pbx.config.rtp_ports
    first = low + (low & 1)
    return "|".join(str(port) for port in range(first, high, 2))


def live_calls(pbx: RunningPbx) -> list[Call]:
    return pbx.run(lambda: list(pbx.pbx.b2bua.calls.values()))


def wait_call(pbx: RunningPbx, predicate, timeout: float = 10.0) -> Call:  # type: ignore[no-untyped-def]
    """The first live call for which `predicate(call)` holds (evaluated on the PBX loop)."""
    found: list[Call] = []

    def check() -> bool:
        calls = pbx.run(lambda: [c for c in pbx.pbx.b2bua.calls.values() if predicate(c)])
        found[:] = calls
        return bool(calls)

    pbx.wait_for(check, timeout)
    return found[0]


def rtp_packet(seq: int, payload_type: int = 8, ssrc: int = 0x1234ABCD, size: int = 160) -> bytes:
    """A minimal RTP packet (RFC 3550 section 5.1) with a silent A-law payload."""
    return struct.pack("!BBHII", 0x80, payload_type, seq & 0xFFFF, seq * 160, ssrc) + b"\xd5" * size


class MediaSocket:
    """A UDP socket on 127.0.0.1 that plays a phone's RTP: sends packets and collects arrivals."""

    def __init__(self, port: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[bytes, tuple[str, int]]] = []

    def send(self, target: tuple[str, int], count: int, payload_type: int = 8) -> None:
        for seq in range(count):
            self.sock.sendto(rtp_packet(seq, payload_type), target)
            time.sleep(0.002)

    def collect(self, seconds: float) -> list[tuple[bytes, tuple[str, int]]]:
        """Read for up to `seconds` (bounded), returning everything received so far."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.received.append(self.sock.recvfrom(2048))
            except BlockingIOError:
                time.sleep(0.005)
        return self.received

    def close(self) -> None:
        self.sock.close()
