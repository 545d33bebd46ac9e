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
            ("calls", "by_a_tx", "by_fork", "by_dialog", "forwarded", "tasks"), 0
        )
        assert pbx.run(lambda: relay.open_sessions) == 0
        pbx.wait_for(lambda: pbx.run(lambda: relay.ports.in_use) == 0, 5)
        assert pbx.run(lambda: relay.open_transports) == 0
        # Right after the calls ~100 transactions linger (Timer K/J/D, at most 64*T1 = 3.2 s
        # here); then none may be left.
        pbx.wait_for(lambda: pbx.run(lambda: core.transaction_count) == 0, 10)
        assert pbx.run(lambda: len(asyncio.all_tasks())) == tasks_before
    finally:
        pbx.stop()
