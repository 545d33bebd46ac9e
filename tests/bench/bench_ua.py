"""The softphone core (pbx.ua) on 127.0.0.1: CPU per call, send pacing, call setup time.

Why these figures matter: the desktop app runs the user agent next to the
PBX and the GUI, so a live call must cost little CPU (goal: under 2 % of a
core per call end, i.e. per RTP stream sent and played, G.711 20 ms), the
20 ms sender must keep its pace (RFC 3550 timestamps promise it; a far
end's jitter buffer pays for every late packet), and a call to a UA on the
same host should connect quickly. Two UAs in this process call each other
directly (no PBX), so each call is two ends: sender+player each. Loops are
bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Coroutine
from typing import Any

from pbx.net.transport import new_event_loop
from pbx.ua import Account, AudioPort, CallState, IncomingCall, ToneSource, UserAgent
from pbx.ua.events import UaEvent
from tests.bench.rows import Row
from tests.integration.ports import free_port

COMMAND = ".venv/bin/python -m tests.bench ua"
CPU_GOAL_PERCENT = 2.0  # of one core, per call end (one stream sent and one played)
PACE_GOAL_MS = 5.0  # p99 deviation of the send interval from 20 ms
SETUP_GOAL_MS = 50.0  # INVITE to connected, UA to UA on one host


async def _answering_pair() -> tuple[UserAgent, UserAgent]:
    """A caller and a callee UA that answers every call at once with a 1 kHz tone."""
    nowhere = free_port()

    def answer(event: UaEvent) -> None:
        if isinstance(event, IncomingCall):
            event.call.set_source(ToneSource(1000.0))
            callee.spawn(event.call.answer())

    caller = UserAgent(Account("1001", "x", "127.0.0.1", nowhere), rtp_ports=(29000, 29499),
                       auto_hold=False)  # fmt: skip
    callee = UserAgent(Account("1002", "x", "127.0.0.1", nowhere), on_event=answer,
                       rtp_ports=(29500, 29999), auto_hold=False)  # fmt: skip
    await caller.start()
    await callee.start()
    return caller, callee


async def _measure(calls: int, seconds: float, setups: int) -> dict[str, float]:
    caller, callee = await _answering_pair()
    target = f"sip:1002@127.0.0.1:{callee.local_port}"
    loop = asyncio.get_running_loop()
    setup_ms = []
    for _ in range(setups):
        started = loop.time()
        call = await caller.call(target)
        await call.wait_for(CallState.CONNECTED, timeout=5)
        setup_ms.append((loop.time() - started) * 1000)
        await call.hangup()
    live = []
    for _ in range(calls):
        call = await caller.call(target, audio=AudioPort(ToneSource(440.0)))
        await call.wait_for(CallState.CONNECTED, timeout=5)
        live.append(call)
    arrivals: list[float] = []
    probe = callee.calls[0].rtp
    original = probe.datagram

    def timed(data: bytes, addr: tuple[str, int]) -> None:
        arrivals.append(time.perf_counter())
        original(data, addr)

    probe.datagram = timed  # type: ignore[method-assign]
    await asyncio.sleep(0.5)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    gaps = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:], strict=False)]
    deviations = sorted(abs(g - 20.0) for g in gaps)
    for call in live:
        await call.hangup()
    await caller.aclose()
    await callee.aclose()
    return {
        "cpu_per_end": 100 * cpu / wall / (2 * calls),
        "pace_p99": deviations[int(0.99 * (len(deviations) - 1))] if deviations else 0.0,
        "pace_sd": statistics.pstdev(gaps) if len(gaps) > 1 else 0.0,
        "setup_median": statistics.median(setup_ms),
        "packets": float(len(arrivals)),
    }


def _run(coro: Coroutine[Any, Any, dict[str, float]]) -> dict[str, float]:
    """On the loop the app's PBX thread uses (uvloop where installed)."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(asyncio.wait_for(coro, 60))


def run(quick: bool) -> list[Row]:
    calls, seconds, setups = (5, 2.0, 5) if quick else (20, 5.0, 20)
    figures = _run(_measure(calls, seconds, setups))
    one = _run(_measure(1, seconds, 1))
    note = f"{calls} calls UA to UA in one process ({2 * calls} ends), {seconds:g} s"
    return [
        Row("ua send pacing p99 deviation, one call", one["pace_p99"], "ms",
            f"< {PACE_GOAL_MS:g} ms", one["pace_p99"] < PACE_GOAL_MS,
            f"from 20 ms, {one['packets']:.0f} arrivals (sd {one['pace_sd']:.2f} ms); "
            "a desktop's usual load", COMMAND),
        Row("ua CPU per call end, one call", one["cpu_per_end"], "% of a core",
            f"< {CPU_GOAL_PERCENT:g} %", one["cpu_per_end"] < CPU_GOAL_PERCENT,
            "both ends in one process", COMMAND),
        Row("ua CPU per call end", figures["cpu_per_end"], "% of a core",
            f"< {CPU_GOAL_PERCENT:g} %", figures["cpu_per_end"] < CPU_GOAL_PERCENT,
            note + "; G.711 + jitter buffer + RTCP", COMMAND),
        Row(f"ua send pacing p99 deviation, {calls} calls", figures["pace_p99"], "ms", "",
            None, f"from 20 ms, one stream of {2 * calls} sharing the loop "
            f"(sd {figures['pace_sd']:.2f} ms)", COMMAND),
        Row("ua call setup (median)", figures["setup_median"], "ms",
            f"< {SETUP_GOAL_MS:g} ms", figures["setup_median"] < SETUP_GOAL_MS,
            f"INVITE to connected, {setups} calls, callee answers at once", COMMAND),
    ]  # fmt: skip
