"""Click-to-call to an outside number: the second leg follows the outbound route to a trunk.

A SIPp carrier on 127.0.0.1 checks the Request-URI and the trunk's caller ID, answers, and
gets BYE when the API hangs up; the CDR names the extension and the number dialled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.api import start_api
from pbx.api.auth import new_token, token_hash
from pbx.store.trunks import Route, Trunk
from tests.integration.pbx_harness import start_pbx
from tests.integration.peers.sipp import SIPP
from tests.integration.ports import free_port
from tests.integration.test_api import Http, Running
from tests.integration.test_trunk_sipp import carrier, provision
from tests.integration.test_wiring_control import assert_ok, phone, wait_state

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


@pytest.fixture
def trunked(tmp_path: Path) -> Iterator[tuple[Running, int]]:
    """A PBX with trunk 'beta' on a free port, route 0|Z. to it, and its HTTP API."""
    port = free_port()
    beta = Trunk("beta", "127.0.0.1", port, caller_id="+4930222", send_pai=True, qualify=False)
    provision(tmp_path / "pbx", [beta], (Route("national", ("0|Z.",), ("beta",)),))
    pbx = start_pbx(tmp_path / "pbx")
    api = asyncio.run_coroutine_threadsafe(start_api(pbx.pbx, "127.0.0.1", 0), pbx.loop).result(10)
    token = new_token()
    pbx.run(lambda: pbx.pbx.store.add_api_token("it", token_hash(token), time.time()))
    try:
        yield Running(pbx, api, Http(api.url, token)), port
    finally:
        asyncio.run_coroutine_threadsafe(api.close(), pbx.loop).result(10)
        pbx.stop()


def test_click_to_call_reaches_an_outside_number_through_the_route(
    trunked: tuple[Running, int], tmp_path: Path
) -> None:
    running, carrier_port = trunked
    answering = carrier(
        tmp_path, "carrier_answer.xml", carrier_port, EXPECTED_RURI_USER="30123456",
        EXPECTED_FROM_USER="\\+4930222",
        EXPECTED_PAI="P-Asserted-Identity: .sip:\\+4930222@127.0.0.1",
    )  # fmt: skip
    first = phone(tmp_path, running, "1001")
    status, body = running.http.json(
        "POST", "/api/v1/calls", {"from": "1001", "to": "030123456", "x_headers": {"X-Out": "1"}}
    )
    assert status == 202, body
    label = body["label"]
    call = wait_state(running, label, "connected")
    assert (call["caller"], call["callee"]) == ("1001", "030123456")
    assert running.http.request("DELETE", f"/api/v1/calls/{label}")[0] == 204
    assert_ok(first.wait(), answering.wait())
    _, page = running.http.json("GET", "/api/v1/cdrs?x_header=X-Out:1")
    [cdr] = page["items"]
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "030123456", "ANSWERED")


def test_click_to_call_to_a_number_without_route_is_404(
    trunked: tuple[Running, int], tmp_path: Path
) -> None:
    running, _ = trunked
    phone(tmp_path, running, "1001")  # registered, never rung
    status, body = running.http.json("POST", "/api/v1/calls", {"from": "1001", "to": "999"})
    assert status == 404 and "999" in body["detail"]
    assert running.pbx.run(lambda: len(running.pbx.pbx.b2bua.calls)) == 0


def test_blind_transfer_to_an_outside_number_goes_out_through_the_trunk(
    trunked: tuple[Running, int], tmp_path: Path
) -> None:
    running, carrier_port = trunked
    answering = carrier(
        tmp_path, "carrier_answer.xml", carrier_port, EXPECTED_RURI_USER="30123456",
        EXPECTED_FROM_USER="\\+4930222",
        EXPECTED_PAI="P-Asserted-Identity: .sip:\\+4930222@127.0.0.1",
    )  # fmt: skip
    first = phone(tmp_path, running, "1001")
    second = phone(tmp_path, running, "1002")
    status, body = running.http.json(
        "POST", "/api/v1/calls", {"from": "1001", "to": "1002", "x_headers": {"X-Xfer": "out"}}
    )
    label = body["label"]
    wait_state(running, label, "connected")
    status, body = running.http.json(
        "POST", f"/api/v1/calls/{label}/transfer", {"target": "030123456"}
    )
    assert status == 202, body
    assert_ok(second.wait())  # the extension's leg ended with BYE
    b2bua = running.pbx.pbx.b2bua
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if running.pbx.run(lambda: b2bua.calls[label].b_dialog is not None):
            break
        time.sleep(0.05)
    assert running.pbx.run(lambda: dict(b2bua.trunking.dialer.router.active)) == {"beta": 1}
    assert running.http.request("DELETE", f"/api/v1/calls/{label}")[0] == 204
    assert_ok(first.wait(), answering.wait())
    _, page = running.http.json("GET", "/api/v1/cdrs?x_header=X-Xfer:out")
    [cdr] = page["items"]
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "030123456", "ANSWERED")
    tables = running.pbx.run(
        lambda: (dict(b2bua.trunking.dialer.router.active), len(b2bua.trunking.forks),
                 len(b2bua.trunking.cursors))
    )  # fmt: skip
    assert tables == ({}, 0, 0)
