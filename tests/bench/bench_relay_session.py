"""CPU per relay session: open_session + set_remote on both legs + close, in one process.

What one call's media plane costs the PBX to set up and tear down (issue #3's call-setup
goal), without SIP: `Relay.open_session` (port pairs, sockets, the epoll set or asyncio
transports), `set_remote` for both legs as the B2BUA does after the SDP exchange, and
`close()`. The loop runs one round after every session so that sockets closed by the
loop (transports, connection_lost) are really closed, as in the PBX. The figure is process
CPU time (time.process_time) over a bounded loop divided by the sessions; the best of
several blocks is reported, since the machine may be shared. Rows for the relay as the
PBX runs it (a pool of parked legs) and with `pool=0` (every leg bound and closed), under
both socket readers.

    .venv/bin/python -m tests.bench relay_session
    .venv/bin/python -m tests.bench.bench_relay_session [sessions] [--profile out.prof]
"""

from __future__ import annotations

import asyncio
import cProfile
import socket
import sys
import time

from pbx.media.ports import PortAllocator
from pbx.media.relay import Leg, Relay
from tests.bench.rows import Row

BLOCK = 100  # sessions per timed block
COMMAND = ".venv/bin/python -m tests.bench relay_session"
RTP_PORTS = (36000, 37999)


async def _one(relay: Relay) -> None:
    session = await relay.open_session("bench", socket.AF_INET, socket.AF_INET)
    session.set_remote(Leg.A, "127.0.0.1", 6000)
    session.set_remote(Leg.B, "127.0.0.1", 6002)
    session.close()
    await asyncio.sleep(0)


async def measure(sockets: str, sessions: int, pool: int = 64, budget_s: float = 20.0) -> float:
    """Best CPU microseconds per session over blocks of BLOCK sessions."""
    relay = Relay(PortAllocator(*RTP_PORTS), bind_v4="127.0.0.1", sockets=sockets, pool=pool)
    for _ in range(BLOCK):  # warm-up: fills a session pool, if the relay keeps one
        await _one(relay)
    best = float("inf")
    deadline = time.monotonic() + budget_s
    done = 0
    while done < sessions and time.monotonic() < deadline:
        start = time.process_time()
        for _ in range(BLOCK):
            await _one(relay)
        best = min(best, (time.process_time() - start) / BLOCK * 1e6)
        done += BLOCK
    await relay.aclose()
    return best


def run(quick: bool) -> list[Row]:
    sessions = 500 if quick else 3000
    rows = []
    for sockets in ("epoll", "transports"):
        for pool in (64, 0):
            figure = asyncio.run(measure(sockets, sessions, pool=pool))
            what = "parked legs reused (the PBX default)" if pool else "pool=0: bind and close"
            rows.append(
                Row(
                    f"relay session setup+teardown, sockets={sockets}, pool={pool}",
                    figure,
                    "us CPU/session",
                    note=f"open_session, set_remote x2, close; {what}; best block of {BLOCK}",
                    command=COMMAND,
                )
            )
    return rows


def main(argv: list[str]) -> int:
    sessions = int(argv[0]) if argv and argv[0].isdigit() else 2000
    profile = argv[argv.index("--profile") + 1] if "--profile" in argv else None
    for sockets in ("epoll", "transports"):
        for pool in (64, 0):
            if profile is not None:
                prof = cProfile.Profile()
                prof.enable()
            figure = asyncio.run(measure(sockets, sessions, pool=pool))
            if profile is not None:
                prof.disable()
                prof.dump_stats(f"{profile}.{sockets}.{pool}")
            print(f"relay session open+set_remote+close, sockets={sockets}, pool={pool}: "
                  f"{figure:.1f} us CPU")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
