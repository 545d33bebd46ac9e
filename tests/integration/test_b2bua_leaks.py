"""Per-call state is freed when calls end: 50 calls, 5 at a time, leave nothing behind.

The PBX runs with a short T1 so that the transactions' linger timers (J, K,
D) run out within a few seconds; then every table of the B2BUA, the relay's
sessions and port pairs, the SIP core's transactions and the loop's tasks
must be back where they were before the first call.
"""

from __future__ import annotations

import asyncio

import pytest

from pbx.sip.timers import TimerConfig
from pbx.store import Disposition
from tests.integration.pbx_harness import start_pbx
from tests.integration.ports import free_port
from tests.integration.test_b2bua_support import callee, caller, needs_sipp, register

pytestmark = [pytest.mark.integration, needs_sipp]

CALLS = 50
SHORT_MEDIA = {"g711a.pcap": "dtmf_2833_1.pcap"}  # 0.14 s of RTP per call and side


def test_fifty_calls_five_at_a_time_leave_no_state_behind(tmp_path):
    timers = TimerConfig(t1=0.05, t2=0.4, t4=0.5, d_unreliable=0.5)
    pbx = start_pbx(tmp_path / "pbx", timers=timers)
    try:
        port = free_port()
        assert register(pbx, tmp_path, "1002", port).ok
        tasks_before = pbx.run(lambda: len(asyncio.all_tasks()))
        answering = callee(tmp_path, "uas_answer.xml", port, calls=CALLS, timeout=60,
                           **SHORT_MEDIA)  # fmt: skip
        calling = caller(pbx, tmp_path, "uac_call.xml", "1001", "1002", pause_ms=300,
                         calls=CALLS, rate=20, limit=5, timeout=60, **SHORT_MEDIA)  # fmt: skip
        result = calling.wait()
        callee_result = answering.wait()
        assert result.ok and result.successful == CALLS, result.log
        assert callee_result.successful == CALLS, callee_result.log

        cdrs = pbx.wait_cdrs(CALLS, timeout=15)
        assert len(cdrs) == CALLS
        assert {c.disposition for c in cdrs} == {Disposition.ANSWERED}
        assert len({c.call_id for c in cdrs}) == CALLS

        b2bua, relay, core = pbx.pbx.b2bua, pbx.pbx.relay, pbx.pbx.core
        assert pbx.run(b2bua.table_sizes) == dict.fromkeys(
            ("calls", "by_a_tx", "by_fork", "by_dialog", "forwarded", "tasks", "session_timers"), 0
        )
        assert pbx.run(lambda: relay.open_sessions) == 0
        pbx.wait_for(lambda: pbx.run(lambda: relay.ports.in_use) == 0, 5)
        assert pbx.run(lambda: relay.open_transports) == 0
        # Closed legs stay bound for the next calls, but only up to the pool's size (64 legs
        # of two sockets each), whatever the number of calls before.
        assert 0 < pbx.run(lambda: relay.pooled_transports) <= 128
        assert 0 < pbx.run(lambda: relay.ports.parked) <= 64
        # Right after the calls ~100 transactions linger (Timer K/J/D, at most 64*T1 = 3.2 s
        # here); then none may be left.
        pbx.wait_for(lambda: pbx.run(lambda: core.transaction_count) == 0, 10)
        assert pbx.run(lambda: len(asyncio.all_tasks())) == tasks_before
    finally:
        pbx.stop()


def test_unanswered_calls_leave_no_state_behind(tmp_path):
    """Cancelled, rejected and unanswered calls free what they held, like answered ones."""
    timers = TimerConfig(t1=0.05, t2=0.4, t4=0.5, d_unreliable=0.5)
    pbx = start_pbx(tmp_path / "pbx", timers=timers, no_answer_timeout=1.0)
    try:
        ring_port, busy_port = free_port(), free_port()
        assert register(pbx, tmp_path, "1003", ring_port).ok
        assert register(pbx, tmp_path, "1004", busy_port).ok
        tasks_before = pbx.run(lambda: len(asyncio.all_tasks()))
        runs = [
            ("uas_ring.xml", ring_port, "uac_cancel.xml", "1003", {}),
            ("uas_reject.xml", busy_port, "uac_rejected.xml", "1004",
             {"EXPECTED_CODE": "603", "REJECT_CODE": "603", "REJECT_REASON": "Decline"}),
            ("uas_ring.xml", ring_port, "uac_rejected.xml", "1003", {"EXPECTED_CODE": "480"}),
        ]  # fmt: skip
        for callee_scenario, port, caller_scenario, number, subst in runs:
            phone = callee(tmp_path, callee_scenario, port, **subst)
            result = caller(pbx, tmp_path, caller_scenario, "1001", number, **subst).wait()
            assert result.ok, result.log
            phone_result = phone.wait()
            assert phone_result.ok, phone_result.log
        cdrs = pbx.wait_cdrs(3)
        assert sorted(c.disposition.value for c in cdrs) == ["BUSY", "CANCELLED", "NO ANSWER"]
        b2bua, relay, core = pbx.pbx.b2bua, pbx.pbx.relay, pbx.pbx.core
        assert set(pbx.run(b2bua.table_sizes).values()) == {0}
        pbx.wait_for(lambda: pbx.run(lambda: relay.ports.in_use + relay.open_sessions) == 0, 5)
        pbx.wait_for(lambda: pbx.run(lambda: core.transaction_count) == 0, 10)
        assert pbx.run(lambda: len(asyncio.all_tasks())) == tasks_before
    finally:
        pbx.stop()
