"""The PBX against SIPp (Debian package sip-tester): registration, calls, CANCEL, busy, 404.

A callee is a server-mode SIPp that first registers from its own port (the PBX
sends requests to where a REGISTER came from, as it must for phones behind
NAT), then answers on that port.
"""

from __future__ import annotations

import pytest

from pbx.store import Disposition, HangupSide
from tests.integration.pbx_harness import PASSWORDS, RunningPbx, start_pbx
from tests.integration.peers.sipp import SIPP, Sipp, auth_field, run, scenario, write_csv
from tests.integration.ports import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


@pytest.fixture
def pbx(tmp_path):
    running = start_pbx(tmp_path / "pbx")
    yield running
    running.stop()


def register(pbx: RunningPbx, tmp_path, user: str, port: int, password: str | None = None,
             expires: int = 300):  # fmt: skip
    csv = write_csv(
        [[user, auth_field(user, password or PASSWORDS[user]), f"127.0.0.1:{port}", str(expires)]],
        tmp_path,
    )
    name = "register.xml" if password is None else "register_fail.xml"
    return run(scenario(name, tmp_path), pbx.address, local_port=port, inject=csv,
               timeout=10, workdir=tmp_path)  # fmt: skip


def callee(tmp_path, name: str, port: int) -> Sipp:
    return Sipp(scenario(name, tmp_path), None, local_port=port, media_port=free_port(step=4),
                calls=1, timeout=20, extra=("-aa",), workdir=tmp_path).start()  # fmt: skip


def call(pbx: RunningPbx, tmp_path, name: str, caller: str, number: str, pause_ms: int = 1500,
         **subst: str):  # fmt: skip
    csv = write_csv([[caller, auth_field(caller, PASSWORDS[caller]), number]], tmp_path)
    return run(scenario(name, tmp_path, **subst), pbx.address, local_port=free_port(),
               media_port=free_port(step=4), inject=csv, pause_ms=pause_ms, timeout=20,
               workdir=tmp_path)  # fmt: skip


def test_register_with_digest_auth(pbx, tmp_path):
    port = free_port()
    result = register(pbx, tmp_path, "1002", port)
    assert result.ok, result.log
    bindings = pbx.run(lambda: pbx.pbx.store.active_bindings(pbx.pbx.wall(), "1002"))
    assert [(b.contact, b.source_port) for b in bindings] == [(f"sip:1002@127.0.0.1:{port}", port)]


def test_register_with_wrong_password_is_refused(pbx, tmp_path):
    result = register(pbx, tmp_path, "1002", free_port(), password="wrong-password")
    assert result.ok, result.log
    assert pbx.run(lambda: pbx.pbx.store.active_bindings(pbx.pbx.wall(), "1002")) == []


def test_call_with_rtp_both_ways(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1002", port).ok
    answering = callee(tmp_path, "uas_answer.xml", port)
    result = call(pbx, tmp_path, "uac_call.xml", "1001", "1002", pause_ms=2000)
    callee_result = answering.wait()
    assert result.ok, result.log
    assert callee_result.ok, callee_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.caller, cdr.callee, cdr.disposition) == ("1001", "1002", Disposition.ANSWERED)
    assert cdr.sip_code == 200 and cdr.hangup_side is HangupSide.CALLER
    assert cdr.x_headers["X-Call-Type"] == "sipp-test"
    assert "X-Sign-ID" in cdr.x_headers
    assert 1.5 < cdr.billsec < 4
    stats = cdr.media_stats
    assert stats is not None
    # both SIPps play the same pcap: each side's packets reach the other side
    assert stats["caller"]["packets_in"] > 50 and stats["callee"]["packets_in"] > 50
    assert stats["caller"]["packets_out"] == stats["callee"]["packets_in"]
    assert stats["callee"]["packets_out"] == stats["caller"]["packets_in"]
    sizes = pbx.run(lambda: pbx.pbx.b2bua.table_sizes())
    assert sizes["calls"] == 0 and pbx.run(lambda: pbx.pbx.relay.open_sessions) == 0


def test_cancel_while_ringing(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    ringing = callee(tmp_path, "uas_ring.xml", port)
    result = call(pbx, tmp_path, "uac_cancel.xml", "1001", "1003")
    assert result.ok, result.log
    assert ringing.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert cdr.disposition is Disposition.CANCELLED and cdr.sip_code == 487
    assert cdr.hangup_side is HangupSide.CALLER and cdr.billsec == 0


def test_busy_callee(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1004", port).ok
    busy = callee(tmp_path, "uas_busy.xml", port)
    result = call(pbx, tmp_path, "uac_rejected.xml", "1001", "1004", EXPECTED_CODE="486")
    assert result.ok, result.log
    assert busy.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.BUSY, 486)


def test_unknown_number_gets_404(pbx, tmp_path):
    result = call(pbx, tmp_path, "uac_rejected.xml", "1001", "4444", EXPECTED_CODE="404")
    assert result.ok, result.log


def test_unregistered_callee_gets_480(pbx, tmp_path):
    result = call(pbx, tmp_path, "uac_rejected.xml", "1001", "1005", EXPECTED_CODE="480")
    assert result.ok, result.log
