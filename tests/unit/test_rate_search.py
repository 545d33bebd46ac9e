"""The SIP load benchmarks' rate search: climb by a factor, then bisect to within 10 %.

A fake server with a fixed ceiling stands in for SIPp runs, so the search's arithmetic is
checked without sockets or time.
"""

from __future__ import annotations

import pytest

from tests.bench.sip_load import Search, Step, search_rate


def _server(ceiling: float, flaky: set[float] | None = None):
    """A step function: clean at or below `ceiling` (except rates listed in `flaky`, which
    fail once each), one failed call above it. Records every rate offered."""
    offered: list[float] = []
    flaky = set(flaky or ())

    def step(rate: float) -> Step:
        offered.append(rate)
        calls = int(rate * 5)
        ok = rate <= ceiling and round(rate) not in flaky
        flaky.discard(round(rate))
        return Step(rate=rate, calls=calls, successful=calls if ok else calls - 1,
                    failed=0 if ok else 1, retransmissions=0, elapsed=calls / rate,
                    returncode=0 if ok else 1)  # fmt: skip

    return step, offered


def _search(step, **kw) -> Search:
    args = {"start": 100.0, "factor": 1.5, "max_steps": 20, "budget_s": 60.0, "confirm": 1}
    return search_rate(step, **(args | kw), log=lambda line: None)


@pytest.mark.parametrize("ceiling", [250.0, 1_000.0, 1_900.0, 2_400.0])
def test_the_best_rate_is_within_ten_percent_of_the_ceiling(ceiling):
    step, offered = _server(ceiling)
    found = _search(step)
    assert found.best is not None
    assert found.best.rate <= ceiling
    assert found.best.rate * 1.1 >= ceiling
    assert found.best_runs[0].rate == found.best.rate  # the best rate was run again
    assert offered.count(found.best.rate) == 2


def test_two_ceilings_a_step_apart_read_differently():
    """x1.5 steps alone read both of these as 1,139/s; bisection tells them apart."""
    low, _ = _server(1_200.0)
    high, _ = _server(1_650.0)
    assert _search(low).best.rate < 1_200.0 < _search(high).best.rate


def test_a_start_rate_that_fails_steps_down_then_bisects():
    step, offered = _server(40.0)
    found = _search(step)
    assert offered[:3] == pytest.approx([100.0, 100 / 1.5, 100 / 1.5**2])
    assert 40.0 / 1.1 <= found.best.rate <= 40.0


def test_steps_are_bounded():
    step, offered = _server(1e9)
    found = _search(step, max_steps=4)
    assert len(found.steps) == 4
    assert found.best.rate == pytest.approx(100 * 1.5**3)


def test_a_rerun_that_fails_falls_back_to_the_next_clean_rate():
    best = round(_search(_server(1_000.0)[0]).best.rate)
    step, _ = _server(1_000.0)
    runs_of_best = []

    def rerun_fails(rate: float) -> Step:
        if round(rate) == best:
            runs_of_best.append(rate)
            if len(runs_of_best) == 2:  # the confirming rerun
                calls = int(rate * 5)
                return Step(rate=rate, calls=calls, successful=calls - 1, failed=1,
                            retransmissions=0, elapsed=calls / rate, returncode=1)  # fmt: skip
        return step(rate)

    found = _search(rerun_fails)
    assert len(runs_of_best) == 2
    assert found.best is not None
    assert found.best.rate < best
    assert all(s.clean for s in found.best_runs)
