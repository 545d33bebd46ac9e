"""pbx.periodic: a look that fails is logged and the next one still comes; 0 never runs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pbx.periodic import Periodic


def test_a_failing_run_is_logged_and_the_next_one_still_comes(caplog):
    async def scenario() -> list[int]:
        runs: list[int] = []
        third = asyncio.get_running_loop().create_future()

        def run() -> None:
            runs.append(len(runs))
            if len(runs) == 3:
                third.set_result(None)
                return
            raise RuntimeError("one bad call")

        looks = Periodic(0.001, run, "test watch")
        looks.start()
        looks.start()  # started once only
        await asyncio.wait_for(third, 5)
        looks.stop()
        assert not looks.running
        return runs

    with caplog.at_level(logging.ERROR, logger="pbx.periodic"):
        assert asyncio.run(scenario()) == [0, 1, 2]
    assert [r.getMessage() for r in caplog.records] == ["test watch failed"] * 2


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_an_interval_of_zero_never_schedules(interval):
    looks = Periodic(interval, lambda: None, "off")
    looks.start()  # no running loop is needed: nothing is scheduled
    assert not looks.running
