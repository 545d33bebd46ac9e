"""OPTIONS keep-alives decide whether the B2BUA forks calls to a contact (pbx.qualify).

A phone that answers OPTIONS stays reachable; one that went silent is marked
unreachable when the OPTIONS transaction times out (Timer F = 64*T1, short
here) and calls to it get 480 without an INVITE being sent to it.
"""

from __future__ import annotations

import socket
import time

import pytest

from pbx.sip.message import Request, parse_message
from pbx.sip.timers import TimerConfig
from tests.integration.pbx_harness import RunningPbx, start_pbx
from tests.integration.ports import free_port
from tests.integration.test_b2bua_support import caller, needs_sipp, register

pytestmark = [pytest.mark.integration, needs_sipp]

FAST = TimerConfig(t1=0.02, t2=0.2, t4=0.2, d_unreliable=0.2)  # Timer F = 1.28 s


class Phone:
    """A UDP socket where a phone registered; answers OPTIONS with 200 when `answering`."""

    def __init__(self, port: int, answering: bool) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.05)
        self.answering = answering
        self.methods: list[str] = []

    def serve(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            message = parse_message(data)
            if not isinstance(message, Request):
                continue
            self.methods.append(message.method)
            if self.answering and message.method == "OPTIONS":
                response = message.make_response(200, to_tag="phone")
                self.sock.sendto(bytes(response), source)

    def close(self) -> None:
        self.sock.close()


def reachable(pbx: RunningPbx, number: str) -> list[bool]:
    return [b.reachable for b in pbx.run(lambda: pbx.pbx.store.active_bindings(
        pbx.pbx.wall(), number))]  # fmt: skip


@pytest.mark.parametrize("answering", [True, False])
def test_keepalives_mark_a_silent_phone_unreachable_and_calls_skip_it(tmp_path, answering):
    pbx = start_pbx(tmp_path / "pbx", qualify_interval=0.3, timers=FAST)
    try:
        port = free_port()
        assert register(pbx, tmp_path, "1008", port).ok
        phone = Phone(port, answering)
        try:
            phone.serve(2.5)  # several keep-alive rounds and one Timer F
            assert phone.methods and set(phone.methods) == {"OPTIONS"}
            assert reachable(pbx, "1008") == [answering]
            if answering:
                return
            before = len(phone.methods)
            result = caller(pbx, tmp_path, "uac_rejected.xml", "1001", "1008",
                            EXPECTED_CODE="480").wait()  # fmt: skip
            assert result.ok, result.log
            phone.serve(0.3)
            assert "INVITE" not in phone.methods[before:]
        finally:
            phone.close()
    finally:
        pbx.stop()
