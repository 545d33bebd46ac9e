"""`--max-calls` and `--max-call-rate` (pbx.admission) with SIPp phones on 127.0.0.1: a call
past a limit gets 503 with Retry-After, the calls in progress are untouched, and the
status API's counters say what was refused."""

from __future__ import annotations

import pytest

from pbx.admission import CallLimitReached
from pbx.call import CallState
from pbx.store import Disposition
from tests.integration.pbx_harness import start_pbx
from tests.integration.ports import free_port
from tests.integration.test_b2bua_support import callee, caller, needs_sipp, register, wait_call

pytestmark = [pytest.mark.integration, needs_sipp]


def _limits(pbx) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return pbx.run(lambda: pbx.pbx.status()["call_limits"])  # type: ignore[no-any-return]


def test_a_call_past_max_calls_gets_503_and_the_call_in_progress_goes_on(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", max_calls=1)
    try:
        busy_port, other_port = free_port(), free_port()
        assert register(pbx, tmp_path, "1003", busy_port).ok
        assert register(pbx, tmp_path, "1004", other_port).ok
        talking = callee(tmp_path, "uas_answer_bye.xml", busy_port, HOLD_MS="3000")
        first = caller(pbx, tmp_path, "uac_wait_bye.xml", "1001", "1003")
        wait_call(pbx, lambda call: call.state is CallState.CONNECTED)
        refused = caller(pbx, tmp_path, "uac_refused.xml", "1002", "1004",
                         REASON="Maximum Calls In Progress", RETRY="5").wait()  # fmt: skip
        assert refused.ok, refused.log
        assert _limits(pbx)["refused_full"] == 1
        with pytest.raises(CallLimitReached, match="Maximum Calls In Progress"):  # click-to-call
            pbx.run(lambda: pbx.pbx.b2bua.originate("1004", "1002", None, {}))
        assert first.wait().ok and talking.wait().ok  # the first call ran to its end
        [cdr] = pbx.wait_cdrs(1)  # the refused call never became a call
        assert (cdr.callee, cdr.disposition) == ("1003", Disposition.ANSWERED)
        # the PBX has room again: the next call reaches the phone (which says busy)
        busy = callee(tmp_path, "uas_reject.xml", other_port, REJECT_CODE="486",
                      REJECT_REASON="Busy Here")  # fmt: skip
        rejected = caller(pbx, tmp_path, "uac_rejected.xml", "1002", "1004",
                          EXPECTED_CODE="486").wait()  # fmt: skip
        assert rejected.ok, rejected.log
        assert busy.wait().ok
    finally:
        pbx.stop()


def test_a_call_past_max_call_rate_gets_503(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", max_call_rate=0.05)  # a burst of one, then 1 per 20 s
    try:
        port = free_port()
        assert register(pbx, tmp_path, "1004", port).ok
        busy = callee(tmp_path, "uas_reject.xml", port, REJECT_CODE="486",
                      REJECT_REASON="Busy Here")  # fmt: skip
        first = caller(pbx, tmp_path, "uac_rejected.xml", "1001", "1004",
                       EXPECTED_CODE="486").wait()  # fmt: skip
        assert first.ok, first.log
        assert busy.wait().ok
        refused = caller(pbx, tmp_path, "uac_refused.xml", "1002", "1004",
                         REASON="Call Rate Exceeded", RETRY="1").wait()  # fmt: skip
        assert refused.ok, refused.log
        assert _limits(pbx) == {"max_calls": 0, "max_call_rate": 0.05, "refused_full": 0,
                                "refused_rate": 1}  # fmt: skip
    finally:
        pbx.stop()
