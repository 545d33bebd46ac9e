"""`deskpbx serve` stopped by SIGTERM/SIGINT with calls in progress ends them cleanly.

The PBX runs as a real subprocess. An answered call gets BYE on both legs
and an ANSWERED CDR with hangup side "system"; a call that is still ringing
gets a final answer for the caller, a CANCEL for the callee and a CDR; the
process exits 0 either way.
"""

from __future__ import annotations

import signal
import time

import pytest

from pbx.store import Disposition, HangupSide, Store
from tests.integration.pbx_harness import PASSWORDS
from tests.integration.ports import free_port
from tests.integration.serve_process import running_serve
from tests.integration.test_b2bua_support import callee, caller, needs_sipp, register

pytestmark = [pytest.mark.integration, needs_sipp]


@pytest.fixture
def serve(tmp_path):
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    with Store.in_dir(data_dir) as store:
        for number, password in PASSWORDS.items():
            store.add_extension(number, password, f"Phone {number}")
    with running_serve(data_dir) as running:
        yield running


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_an_answered_call_with_bye_to_both_phones(serve, tmp_path, signum):
    port = free_port()
    assert register(serve, tmp_path, "1002", port).ok
    # uas_answer.xml passes only if it gets a BYE; uac_wait_bye.xml likewise.
    answering = callee(tmp_path, "uas_answer.xml", port)
    calling = caller(serve, tmp_path, "uac_wait_bye.xml", "1001", "1002")  # type: ignore[arg-type]
    serve.wait_log("answered by")
    time.sleep(0.5)  # let the ACK arrive and some RTP flow
    serve.proc.send_signal(signum)
    assert serve.proc.wait(15) == 0
    result = calling.wait()
    assert result.ok, result.log
    callee_result = answering.wait()
    assert callee_result.ok, callee_result.log
    [cdr] = serve.cdrs()
    assert (cdr.disposition, cdr.sip_code) == (Disposition.ANSWERED, 200)
    assert cdr.hangup_side is HangupSide.SYSTEM and cdr.billsec > 0.3
    assert any("stopping: ending 1 active calls" in line for line in serve.lines)


def test_sigterm_gives_a_ringing_call_a_final_answer_and_a_cdr(serve, tmp_path):
    port = free_port()
    assert register(serve, tmp_path, "1003", port).ok
    # uas_ring.xml passes only if the PBX CANCELs it and ACKs its 487.
    ringing = callee(tmp_path, "uas_ring.xml", port)
    calling = caller(serve, tmp_path, "uac_rejected.xml", "1001", "1003",  # type: ignore[arg-type]
                     EXPECTED_CODE="503")  # fmt: skip
    serve.wait_log("-> 1003")
    time.sleep(0.5)  # the callee has answered 180 by now
    serve.proc.send_signal(signal.SIGTERM)
    assert serve.proc.wait(15) == 0
    result = calling.wait()
    assert result.ok, result.log
    ring_result = ringing.wait()
    assert ring_result.ok, ring_result.log
    [cdr] = serve.cdrs()
    assert (cdr.disposition, cdr.sip_code) == (Disposition.FAILED, 503)
    assert cdr.hangup_side is HangupSide.SYSTEM and cdr.billsec == 0
