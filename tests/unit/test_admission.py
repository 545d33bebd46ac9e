"""Call admission (pbx.admission) with a fake clock: the ceiling on calls in progress, the
token bucket on new calls per second, and the 503 each refusal carries (RFC 3261
§21.5.4)."""

from __future__ import annotations

import pytest

from pbx.admission import FULL, TOO_FAST, CallAdmission


def test_no_limits_admit_everything() -> None:
    admission = CallAdmission()
    assert all(admission.refuse(in_progress, 0.0) is None for in_progress in range(10_000))
    assert admission.stats()["refused_full"] == admission.stats()["refused_rate"] == 0


def test_the_ceiling_counts_calls_in_progress() -> None:
    admission = CallAdmission(max_calls=3)
    assert admission.refuse(2, 0.0) is None
    assert admission.refuse(3, 0.0) is FULL
    assert admission.refuse(4, 0.0) is FULL
    assert admission.refuse(2, 0.0) is None  # a call ended: room again
    assert admission.refused_full == 2
    assert FULL.headers == [("Retry-After", "5")]
    assert FULL.reason == "Maximum Calls In Progress"


def test_the_rate_allows_one_seconds_burst_then_the_rate() -> None:
    admission = CallAdmission(max_call_rate=5)
    now = 100.0
    assert [admission.refuse(0, now) for _ in range(5)] == [None] * 5
    assert admission.refuse(0, now) is TOO_FAST
    assert admission.refuse(0, now + 0.1) is TOO_FAST  # half a token back: not yet
    assert admission.refuse(0, now + 0.2) is None  # one token after 1/5 s
    assert admission.refuse(0, now + 0.2) is TOO_FAST
    assert admission.refused_rate == 3
    assert TOO_FAST.headers == [("Retry-After", "1")]


def test_the_rate_holds_over_a_long_run() -> None:
    admission = CallAdmission(max_call_rate=2.5)
    admitted = sum(admission.refuse(0, i * 0.01) is None for i in range(1000))  # 10 s, 100/s
    assert admitted == pytest.approx(2.5 + 10 * 2.5, abs=1)  # the burst, then the rate


def test_a_full_pbx_takes_no_token() -> None:
    admission = CallAdmission(max_calls=1, max_call_rate=1)
    assert admission.refuse(1, 0.0) is FULL
    assert admission.refuse(0, 0.0) is None  # the refused call did not spend the token


def test_an_idle_bucket_does_not_grow_past_one_second() -> None:
    admission = CallAdmission(max_call_rate=2)
    admission.refuse(0, 0.0)
    assert [admission.refuse(0, 3600.0) for _ in range(3)] == [None, None, TOO_FAST]


def test_a_clock_going_back_gives_nothing() -> None:
    admission = CallAdmission(max_call_rate=1)
    assert admission.refuse(0, 10.0) is None
    assert admission.refuse(0, 5.0) is TOO_FAST


@pytest.mark.parametrize(("calls", "rate"), [(-1, 0), (0, -0.5)])
def test_negative_limits_are_refused(calls: int, rate: float) -> None:
    with pytest.raises(ValueError):
        CallAdmission(calls, rate)
