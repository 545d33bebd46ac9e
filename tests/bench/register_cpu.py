"""Server CPU per authenticated registration, measured in one process with no sockets in the way.

A real `pbx.server.Pbx` (temp data dir, UDP on 127.0.0.1:0, MD5 challenges, no HTTP API, no
qualify) is started; then its UDP listener's transport is swapped for one that records what
the PBX sends, and pre-built REGISTER datagrams go in through `UdpListener.datagram_received`,
the entry the event loop calls for a real datagram. One registration is the SIPp scenario of
bench_register: REGISTER, 401, REGISTER with MD5 qop=auth credentials, 200 (RFC 3261 §10.2,
§22.4). The figure is the process CPU of a round (all threads, the last bindings written)
less this thread's CPU building requests and answering challenges (the client's work).

    .venv/bin/python -m tests.bench.register_cpu [count] [--profile FILE] [--no-lane]

(--no-lane: every REGISTER takes the full path, pbx.registrar_lane off, for comparison)

prints "registration CPU, in-process: N us" (best of three bounded runs).
"""

from __future__ import annotations

import asyncio
import cProfile
import hashlib
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

USERS = 1_000
SOURCE = ("127.0.0.1", 5999)
TIME_BUDGET_S = 20.0

_NONCE = re.compile(rb'nonce="([^"]+)"')
_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})")


@dataclass(frozen=True, slots=True)
class Figure:
    registrations: int
    cpu_us: float
    """Server CPU microseconds per registration (two REGISTER transactions)."""


class _RecordingTransport:
    """Stands in for the asyncio datagram transport: keeps the last datagram sent."""

    def __init__(self) -> None:
        self.last = b""
        self.sent = 0

    def sendto(self, data: bytes, addr: object = None) -> None:
        self.last = data
        self.sent += 1

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def _password(user: str) -> str:
    return f"secret-{user}"


def _register(user: str, host: str, port: int, call_id: str, cseq: int, auth: str = "") -> bytes:
    """A REGISTER shaped like SIPp's register_auth.xml."""
    token = call_id.split("@")[0]
    lines = [
        f"REGISTER sip:{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {SOURCE[0]}:{SOURCE[1]};branch=z9hG4bK-{token}-{cseq};rport",
        f"From: <sip:{user}@{host}>;tag=4242SIPpTag{token}",
        f"To: <sip:{user}@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@{SOURCE[0]}:{SOURCE[1]}>",
        *([auth] if auth else []),
        "Max-Forwards: 70",
        "Expires: 3600",
        "User-Agent: SIPp",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _authorization(user: str, realm: str, nonce: str, uri: str) -> str:
    """What SIPp's [authentication] puts in (MD5, qop=auth, nc=00000001)."""
    cnonce, nc = "6b8b4567", "00000001"
    ha1 = hashlib.md5(f"{user}:{realm}:{_password(user)}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
    response = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (
        f'Authorization: Digest username="{user}",realm="{realm}",cnonce="{cnonce}",nc={nc},'
        f'qop=auth,uri="{uri}",nonce="{nonce}",response="{response}",algorithm=MD5'
    )


async def _measure(
    data_dir: Path, count: int, rounds: int, profile: str | None, lane: bool = True
) -> Figure:
    from pbx.config import PbxConfig
    from pbx.net.transport import Listen
    from pbx.server import Pbx
    from pbx.store import Store
    from pbx.tuning import restore_gc, tune_gc

    users = [str(1000 + i) for i in range(USERS)]
    with Store.in_dir(data_dir) as store:
        for user in users:
            if store.find_extension(user) is None:
                store.add_extension(user, _password(user), f"Bench {user}")
    config = PbxConfig(
        data_dir=data_dir, listen=(Listen("127.0.0.1", 0, ("UDP",)),), rtp_ports=(40000, 40999),
        auth_algorithms=("MD5",), qualify_interval=0, http=None,
    )  # fmt: skip
    pbx = Pbx(config, register_lane=lane)
    await pbx.start()
    settings = tune_gc()
    try:
        assert pbx.endpoint is not None and pbx.store is not None
        listener = pbx.endpoint.transports._udp[0]
        port = listener.local_address[1]
        fake = _RecordingTransport()
        listener._transport = fake  # type: ignore[assignment]
        feed = listener.datagram_received
        store = pbx.store
        store_flush = getattr(store, "flush", lambda: None)  # write-behind stores owe rows
        core, loop = pbx.core, asyncio.get_running_loop()

        def flush() -> None:
            """What the round still owes: the store's pending rows, and every transaction's
            end (Timer J, 64*T1 after the final answer, RFC 3261 17.2.2), which a steady load
            pays for each REGISTER too."""
            store_flush()
            core.handle_timers(loop.time() + 64 * core.config.t1 + 1.0)

        best = float("inf")
        profiler = cProfile.Profile() if profile else None
        for round_ in range(rounds):
            cpu = _one_round(
                feed, fake, users, port, pbx.store.realm, count, round_, profiler, flush
            )
            best = min(best, cpu)
        if profiler is not None and profile:
            profiler.dump_stats(profile)
        return Figure(count, best * 1e6 / count)
    finally:
        listener._transport = None
        await pbx.aclose()
        restore_gc(settings)


def _one_round(
    feed: Callable[[bytes, tuple[str | int, ...]], None],
    fake: _RecordingTransport,
    users: list[str],
    port: int,
    realm: str,
    count: int,
    round_: int,
    profiler: cProfile.Profile | None,
    flush: Callable[[], None],
) -> float:
    """Seconds of process CPU the PBX spent on `count` registrations (bounded in time).

    Process CPU over the whole round (every thread: the store's write-behind flushes too; the
    last batch is written and the round's transactions ended before the clock stops) minus
    this thread's CPU spent building requests and answering challenges, the client's work.
    """
    host = "127.0.0.1"
    uri = f"sip:{host}:{port}"
    client, done, started = 0.0, 0, time.monotonic()
    mine = time.thread_time
    if profiler is not None:
        profiler.enable()
    began = time.process_time()
    for i in range(count):
        if time.monotonic() - started > TIME_BUDGET_S:
            break
        t0 = mine()
        user = users[i % len(users)]
        call_id = f"r{round_}-{i}@bench"
        first = _register(user, host, port, call_id, 1)
        client += mine() - t0
        feed(first, SOURCE)
        t0 = mine()
        nonce = _expect(fake.last, b"401", _NONCE).decode()
        second = _register(user, host, port, call_id, 2, _authorization(user, realm, nonce, uri))
        client += mine() - t0
        feed(second, SOURCE)
        t0 = mine()
        _expect(fake.last, b"200", None)
        client += mine() - t0
        done += 1
    flush()
    spent = time.process_time() - began - client
    if profiler is not None:
        profiler.disable()
    return spent * count / max(done, 1)


def _expect(data: bytes, status: bytes, pattern: re.Pattern[bytes] | None) -> bytes:
    found = _STATUS.match(data)
    if found is None or found.group(1) != status:
        raise RuntimeError(f"expected {status.decode()}, the PBX sent {data[:200]!r}")
    if pattern is None:
        return b""
    match = pattern.search(data)
    if match is None:
        raise RuntimeError(f"no {pattern.pattern!r} in {data[:400]!r}")
    return match.group(1)


def measure(
    count: int = 3_000, rounds: int = 3, profile: str | None = None, lane: bool = True
) -> Figure:
    """Best-of-`rounds` server CPU per registration over `count` registrations each."""
    with tempfile.TemporaryDirectory(prefix="register-cpu-") as tmp:
        return asyncio.run(_measure(Path(tmp), count, rounds, profile, lane))


def main(argv: list[str]) -> int:
    profile = None
    if "--profile" in argv:
        at = argv.index("--profile")
        profile = argv[at + 1]
        del argv[at : at + 2]
    lane = "--no-lane" not in argv
    argv = [arg for arg in argv if arg != "--no-lane"]
    count = int(argv[0]) if argv else 3_000
    figure = measure(count, profile=profile, lane=lane)
    print(f"registration CPU, in-process: {figure.cpu_us:.1f} us "
          f"(best of 3 x {figure.registrations} registrations)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
