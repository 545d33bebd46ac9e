"""Call setup and teardown through the B2BUA, with SIPp phones on 127.0.0.1.

Forking to two registered contacts (first 200 wins, the other fork is
CANCELled), early media (183 with SDP through the relay), the callee hanging
up, rejections (486/603) and the no-answer timer (480), and X- headers
carried from the caller to the callee leg and the CDR.
"""

from __future__ import annotations

import pytest

from pbx.call import CallState
from pbx.media.relay import Leg
from pbx.store import Disposition, HangupSide
from tests.integration.pbx_harness import start_pbx
from tests.integration.ports import free_port
from tests.integration.test_b2bua_support import (
    callee,
    caller,
    needs_sipp,
    register,
    relay_ports_regexp,
    wait_call,
)

pytestmark = [pytest.mark.integration, needs_sipp]


@pytest.fixture
def pbx(tmp_path):
    running = start_pbx(tmp_path / "pbx")
    yield running
    running.stop()


def test_forking_first_answer_wins_and_the_other_contact_is_cancelled(pbx, tmp_path):
    answer_port, ring_port = free_port(), free_port()
    assert register(pbx, tmp_path, "1002", answer_port).ok
    assert register(pbx, tmp_path, "1002", ring_port).ok
    contacts = pbx.run(lambda: sorted(
        b.contact for b in pbx.pbx.store.active_bindings(pbx.pbx.wall(), "1002")
    ))  # fmt: skip
    assert contacts == sorted(f"sip:1002@127.0.0.1:{p}" for p in (answer_port, ring_port))
    # The ringing phone only passes if it gets CANCEL saying the call was completed elsewhere
    # (RFC 3326: no missed call on that phone), answers 200 and 487, and gets the ACK.
    ringing = callee(tmp_path, "uas_ring_elsewhere.xml", ring_port)
    answering = callee(tmp_path, "uas_answer_x.xml", answer_port)
    result = caller(pbx, tmp_path, "uac_call.xml", "1001", "1002", pause_ms=1000).wait()
    assert result.ok, result.log
    assert answering.wait().ok
    ring_result = ringing.wait()
    assert ring_result.ok, ring_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.ANSWERED, 200)
    assert pbx.run(lambda: pbx.pbx.b2bua.table_sizes()["calls"]) == 0


def test_the_reason_of_the_callers_cancel_reaches_the_ringing_phone(pbx, tmp_path):
    """A caller (a carrier, a ring group upstream) cancels because the call was answered
    elsewhere: the CANCEL to the ringing phone says so too (RFC 3326)."""
    port = free_port()
    assert register(pbx, tmp_path, "1002", port).ok
    ringing = callee(tmp_path, "uas_ring_elsewhere.xml", port)
    result = caller(pbx, tmp_path, "uac_cancel_elsewhere.xml", "1001", "1002").wait()
    assert result.ok, result.log
    ring_result = ringing.wait()
    assert ring_result.ok, ring_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert cdr.disposition is Disposition.CANCELLED


def test_forking_a_busy_contact_does_not_end_the_call_while_another_rings(pbx, tmp_path):
    busy_port, answer_port = free_port(), free_port()
    assert register(pbx, tmp_path, "1002", busy_port).ok
    assert register(pbx, tmp_path, "1002", answer_port).ok
    busy = callee(tmp_path, "uas_reject.xml", busy_port, REJECT_CODE="486",
                  REJECT_REASON="Busy Here")  # fmt: skip
    answering = callee(tmp_path, "uas_early.xml", answer_port, EARLY_MS="800")
    result = caller(pbx, tmp_path, "uac_call.xml", "1001", "1002", pause_ms=300).wait()
    assert result.ok, result.log
    assert busy.wait().ok and answering.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.ANSWERED, 200)


def test_early_media_reaches_the_caller_through_the_relay(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1002", port).ok
    states: list[str] = []
    pbx.run(lambda: setattr(pbx.pbx.b2bua, "on_call_state",
                            lambda call: states.append(call.state.value)))  # fmt: skip
    early = callee(tmp_path, "uas_early.xml", port, EARLY_MS="2500")
    # uac_early.xml fails unless the 183 and the 200 both carry SDP with c=127.0.0.1 and an
    # m= port from the relay's range.
    calling = caller(pbx, tmp_path, "uac_early.xml", "1001", "1002", pause_ms=500,
                     RELAY_PORTS=relay_ports_regexp(pbx))  # fmt: skip

    def early_media_flowing(call) -> bool:  # type: ignore[no-untyped-def]
        if call.state is not CallState.EARLY_MEDIA or call.relay is None:
            return False
        return call.relay.stats(Leg.B).packets_in > 10 and call.relay.stats(Leg.A).packets_out > 10

    call = wait_call(pbx, early_media_flowing, timeout=5)
    assert call.answer is None  # still unanswered: this is early media
    result = calling.wait()
    assert result.ok, result.log
    assert early.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert cdr.disposition is Disposition.ANSWERED
    assert cdr.media_stats is not None
    assert cdr.media_stats["callee"]["packets_in"] > 10
    assert states == ["early_media", "connected"]  # what pbx.api.events publishes from


def test_callee_hangs_up(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    hanging_up = callee(tmp_path, "uas_answer_bye.xml", port, HOLD_MS="1200")
    result = caller(pbx, tmp_path, "uac_wait_bye.xml", "1001", "1003").wait()
    assert result.ok, result.log
    callee_result = hanging_up.wait()
    assert callee_result.ok, callee_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.hangup_side) == (Disposition.ANSWERED, HangupSide.CALLEE)
    assert 1.0 < cdr.billsec < 4


@pytest.mark.parametrize(
    ("code", "reason", "disposition"),
    [("486", "Busy Here", Disposition.BUSY), ("603", "Decline", Disposition.BUSY)],
)
def test_rejection_is_relayed(pbx, tmp_path, code, reason, disposition):
    port = free_port()
    assert register(pbx, tmp_path, "1004", port).ok
    rejecting = callee(tmp_path, "uas_reject.xml", port, REJECT_CODE=code, REJECT_REASON=reason)
    result = caller(pbx, tmp_path, "uac_rejected.xml", "1001", "1004", EXPECTED_CODE=code).wait()
    assert result.ok, result.log
    assert rejecting.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code, cdr.sip_reason) == (disposition, int(code), reason)
    assert cdr.hangup_side is HangupSide.CALLEE and cdr.billsec == 0


def test_no_answer_in_time_gives_480(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", no_answer_timeout=1.5)
    try:
        port = free_port()
        assert register(pbx, tmp_path, "1005", port).ok
        # The ringing phone passes only if the PBX CANCELs it when the timer fires.
        ringing = callee(tmp_path, "uas_ring.xml", port)
        calling = caller(pbx, tmp_path, "uac_rejected.xml", "1001", "1005", EXPECTED_CODE="480")
        result = calling.wait()
        assert result.ok, result.log
        assert ringing.wait().ok
        [cdr] = pbx.wait_cdrs(1)
        assert (cdr.disposition, cdr.sip_code) == (Disposition.NO_ANSWER, 480)
        assert 1.4 < cdr.duration < 4 and cdr.billsec == 0
    finally:
        pbx.stop()


def test_x_headers_reach_the_callee_and_the_cdr(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1006", port).ok
    # uas_answer_x.xml fails the call unless the INVITE it gets carries X-Call-Type: sipp-test.
    answering = callee(tmp_path, "uas_answer_x.xml", port)
    result = caller(pbx, tmp_path, "uac_call.xml", "1001", "1006", pause_ms=300).wait()
    assert result.ok, result.log
    callee_result = answering.wait()
    assert callee_result.ok, callee_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert cdr.x_headers["X-Call-Type"] == "sipp-test"
    assert {name.lower() for name in cdr.x_headers} == {"x-call-type", "x-sign-id"}


def test_caller_bye_on_the_early_dialog_cancels_the_ringing_callee(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    ringing = callee(tmp_path, "uas_ring.xml", port)  # passes only with CANCEL, 487, ACK
    result = caller(pbx, tmp_path, "uac_early_bye.xml", "1001", "1003").wait()
    assert result.ok, result.log
    ring_result = ringing.wait()
    assert ring_result.ok, ring_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.CANCELLED, 487)
    assert cdr.hangup_side is HangupSide.CALLER and cdr.billsec == 0


@pytest.fixture
def quiet_watch_pbx(tmp_path):
    running = start_pbx(tmp_path / "watched", media_timeout=2.0)
    yield running
    running.stop()


def test_a_call_whose_phones_send_no_media_is_hung_up_after_the_media_timeout(
    quiet_watch_pbx, tmp_path
):
    """Both phones fall silent (no RTP, no RTCP) as if gone: after --media-timeout the PBX
    sends BYE to both and writes the CDR (hung up by the system)."""
    pbx = quiet_watch_pbx
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    answering = callee(tmp_path, "uas_answer_quiet.xml", port)  # passes only with a BYE
    result = caller(pbx, tmp_path, "uac_wait_bye.xml", "1001", "1003").wait()
    assert result.ok, result.log
    assert answering.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.hangup_side) == (Disposition.ANSWERED, HangupSide.SYSTEM)
    assert 1.9 < cdr.billsec < 6  # the 2 s timeout, seen within a 1 s look
    assert pbx.run(lambda: pbx.pbx.status()["media_timeout"]) == {"seconds": 2.0, "ended": 1}


def test_a_call_with_media_flowing_is_not_hung_up_by_the_media_timeout(quiet_watch_pbx, tmp_path):
    pbx = quiet_watch_pbx
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    answering = callee(tmp_path, "uas_answer.xml", port)  # plays 7 s of A-law
    result = caller(pbx, tmp_path, "uac_call.xml", "1001", "1003", pause_ms=4500).wait()
    assert result.ok, result.log
    assert answering.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.hangup_side) == (Disposition.ANSWERED, HangupSide.CALLER)
    assert cdr.billsec > 4


@pytest.fixture
def timed_pbx(tmp_path):
    """Session timers of a few seconds: the RFC's 90 s floor is for the wire, not for tests."""
    running = start_pbx(tmp_path / "timed", session_min_se=2)
    yield running
    running.stop()


def test_a_caller_that_asks_for_a_session_timer_and_never_refreshes_is_hung_up(timed_pbx, tmp_path):
    """RFC 4028: the 200 confirms the caller's 3 s timer (refresher=uac, Require: timer); no
    refresh comes, so min(32, 3 / 3) = 1 s before it would expire the PBX sends BYE to both
    phones and writes the CDR (hung up by the system)."""
    pbx = timed_pbx
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    answering = callee(tmp_path, "uas_answer_quiet.xml", port)  # passes only with a BYE
    result = caller(
        pbx, tmp_path, "uac_session_expiry.xml", "1001", "1003", SESSION_EXPIRES="3"
    ).wait()
    assert result.ok, result.log
    assert answering.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.hangup_side) == (Disposition.ANSWERED, HangupSide.SYSTEM)
    assert 1.9 < cdr.billsec < 4.5  # 2 s, seen within a 1 s look
    status = pbx.run(lambda: pbx.pbx.status()["session_timers"])
    assert status == {"min_se": 2, "active": 0, "ended": 1}


def test_a_caller_refreshing_with_update_keeps_its_call_and_the_callee_never_sees_it(
    timed_pbx, tmp_path
):
    """Four UPDATEs without a body, one a second, each answered 200 by the PBX with the timer;
    the callee fails on any UPDATE; the call outlives the 2.7 s a 4 s timer allows without a
    refresh (4 - min(32, 4 / 3)) and ends with the caller's BYE."""
    pbx = timed_pbx
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    answering = callee(tmp_path, "uas_answer_no_update.xml", port)
    result = caller(
        pbx, tmp_path, "uac_session_refresh.xml", "1001", "1003",
        SESSION_EXPIRES="4", REFRESH_MS="1000",
    ).wait()  # fmt: skip
    assert result.ok, result.log
    callee_result = answering.wait()
    assert callee_result.ok, callee_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.hangup_side) == (Disposition.ANSWERED, HangupSide.CALLER)
    assert cdr.billsec > 3.5
    assert pbx.run(lambda: pbx.pbx.status()["session_timers"]["ended"]) == 0
    assert pbx.run(lambda: pbx.pbx.b2bua.table_sizes()["session_timers"]) == 0


def test_a_session_interval_below_min_se_is_refused_with_422(timed_pbx, tmp_path):
    pbx = timed_pbx
    assert register(pbx, tmp_path, "1003", free_port()).ok
    result = caller(
        pbx, tmp_path, "uac_session_brief.xml", "1001", "1003", SESSION_EXPIRES="1", MIN_SE="2"
    ).wait()
    assert result.ok, result.log
    assert pbx.run(lambda: pbx.pbx.b2bua.table_sizes()["calls"]) == 0


@pytest.fixture
def pinging_pbx(tmp_path):
    running = start_pbx(tmp_path / "pinging", dialog_ping=1.0)
    yield running
    running.stop()


def test_a_phone_that_answers_the_dialog_ping_with_481_has_its_call_ended(pinging_pbx, tmp_path):
    """The callee answers the in-dialog OPTIONS 481, as a phone that rebooted mid-call would:
    the PBX sends BYE to both phones (the caller, which answered its ping 200, included) and
    writes the CDR, hung up by the system."""
    pbx = pinging_pbx
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    answering = callee(tmp_path, "uas_ping_481.xml", port)
    result = caller(pbx, tmp_path, "uac_ping_wait_bye.xml", "1001", "1003").wait()
    assert result.ok, result.log
    callee_result = answering.wait()
    assert callee_result.ok, callee_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.hangup_side) == (Disposition.ANSWERED, HangupSide.SYSTEM)
    assert pbx.run(lambda: pbx.pbx.status()["dialog_ping"]) == {"seconds": 1.0, "ended": 1}
    assert pbx.run(lambda: pbx.pbx.b2bua.table_sizes()["forwarded"]) == 0
