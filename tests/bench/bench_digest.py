"""Digest authentication throughput: how many REGISTERs per second one core can verify.

A registrar under a re-registration storm (every phone re-registering after a PBX
restart) verifies one Authorization per REGISTER; these figures bound that rate.
Loops are bounded in count and in time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pbx.sip.digest import compute_ha1, parse_credentials
from pbx.sip.digest_client import DigestClient
from pbx.sip.digest_server import DigestServer
from tests.bench.rows import Row

COMMAND = ".venv/bin/python -m tests.bench digest"
GOAL_PER_S = 2_000.0  # 2 000 phones re-registering within one second after a restart


def _rate(work: Callable[[int], object], count: int, budget_s: float) -> float:
    """Operations per second over at most `count` calls or `budget_s` seconds."""
    started = time.perf_counter()
    done = 0
    while done < count and time.perf_counter() - started < budget_s:
        work(done)
        done += 1
    return done / (time.perf_counter() - started)


def run(quick: bool) -> list[Row]:
    count, budget = (2_000, 0.5) if quick else (20_000, 3.0)
    rows: list[Row] = []
    for algorithm in ("SHA-256", "MD5"):
        server = DigestServer("pbx", b"benchmark-secret-0123456789", replay_cache_size=100_000)
        ha1 = compute_ha1("alice", "pbx", "pw", algorithm)
        client = DigestClient("alice", "pw")
        challenge = server.challenge(0.0, algorithms=(algorithm,))
        answers = [client.authorization(challenge, "REGISTER", "sip:pbx") for _ in range(count)]

        def verify(
            i: int, answers: list[str] = answers, server: DigestServer = server, ha1: str = ha1
        ) -> object:
            result = server.verify(answers[i], "REGISTER", lambda *_: ha1, 1.0)
            assert result.ok
            return result

        rate = _rate(verify, count, budget)
        rows.append(
            Row(
                f"digest verify {algorithm} (parse+check+nc)",
                rate,
                "req/s",
                f">= {GOAL_PER_S:,.0f} req/s",
                rate >= GOAL_PER_S,
                "one core",
                COMMAND,
            )
        )
    sample = answers[0]
    rate = _rate(lambda _: parse_credentials(sample), count, budget)
    rows.append(Row("Authorization header parse", rate, "hdr/s", "", None, "", COMMAND))
    rate = _rate(lambda _: server.challenge(1.0), count, budget)
    rows.append(Row("challenge (SHA-256 + MD5)", rate, "resp/s", "", None, "", COMMAND))
    return rows
