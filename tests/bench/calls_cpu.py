"""CPU per call setup inside one process: a real Pbx, the SIPp call ladder, no sockets for SIP.

What `tests.bench calls` measures end to end with SIPp, minus the kernel and SIPp: a real
`pbx.server.Pbx` (temp data dir, sqlite store, relay binding real RTP ports, the collector
tuned as `deskpbx serve` tunes it) whose UDP listener's asyncio transport is replaced by a
recorder. Every message goes in through `UdpListener.datagram_received`, so the parser, the
transaction layer, the digest check, the B2BUA, the relay setup, the CDR write and the INFO
log lines all run.

One call, as in tests/bench/sipp/uac_call_nortp.xml (RFC 3261 §13, §15, §22.3): INVITE,
407, ACK, INVITE with Proxy-Authorization, 100, (leg B: INVITE, 100, 180, 200, ACK), 180,
200, ACK, BYE, (leg B: BYE, 200), 200. The callee is a fake in-process UA that answers at
once. The figure is process CPU time (time.process_time) over a bounded loop divided by
the calls, the driver's own message building included (a few percent).

    .venv/bin/python -m tests.bench.calls_cpu [calls] [--profile out.prof]
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pbx.config import PbxConfig
from pbx.net.transport import Listen
from pbx.server import Pbx
from pbx.sip.digest_client import DigestClient
from pbx.store import Binding
from pbx.tuning import restore_gc, tune_gc

CALLER, CALLEE = "1001", "1002"
CALLER_ADDR = ("127.0.0.1", 5071)
CALLEE_ADDR = ("127.0.0.1", 5072)
RTP_PORTS = (34000, 35999)
BLOCK = 25  # calls per timed block: on a shared machine the best block is the steadiest figure
OFFER = (
    b"v=0\r\no=sipp 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000"
    b"\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
)
ANSWER = OFFER.replace(b"6000", b"6002").replace(b"o=sipp 1 1", b"o=sipp 2 2")
_HEADER = re.compile(rb"^([A-Za-z-]+):[ \t]*(.*?)\r$", re.M)


def _password(user: str) -> str:
    return f"secret-{user}"


@dataclass(slots=True)
class Sent:
    """One message the PBX sent: its first line, headers by lower-case name, raw bytes."""

    first: bytes
    headers: dict[bytes, list[bytes]]
    data: bytes

    @classmethod
    def of(cls, data: bytes) -> Sent:
        head = data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
        first, _, _rest = head.partition(b"\r\n")
        headers: dict[bytes, list[bytes]] = {}
        for name, value in _HEADER.findall(head):
            headers.setdefault(name.lower(), []).append(value)
        return cls(first, headers, data)

    def one(self, name: bytes) -> bytes:
        return self.headers[name][0]

    @property
    def status(self) -> int:
        return int(self.first.split(b" ", 2)[1]) if self.first.startswith(b"SIP/") else 0


@dataclass
class FakeNet:
    """Records what the PBX sends; a fake callee answers its INVITEs and BYEs at once."""

    to_caller: list[Sent] = field(default_factory=list)
    to_callee: list[Sent] = field(default_factory=list)
    real: asyncio.BaseTransport | None = None  # the socket's transport, closed at the end

    def sendto(self, data: bytes, destination: tuple[str, int]) -> None:
        """The UDP listener's asyncio transport, replaced: nothing reaches a socket."""
        box = self.to_callee if tuple(destination[:2]) == CALLEE_ADDR else self.to_caller
        box.append(Sent.of(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        if self.real is not None:
            self.real.close()


def _callee_answer(msg: Sent, status: int, reason: str, tag: str, body: bytes = b"") -> bytes:
    """The fake callee's response to `msg` (RFC 3261 8.2.6: Via, From, To, Call-ID, CSeq)."""
    to = msg.one(b"to")
    if b";tag=" not in to:
        to += f";tag={tag}".encode()
    lines = [f"SIP/2.0 {status} {reason}".encode()]
    lines += [b"Via: " + v for v in msg.headers[b"via"]]
    lines += [b"From: " + msg.one(b"from"), b"To: " + to, b"Call-ID: " + msg.one(b"call-id"),
              b"CSeq: " + msg.one(b"cseq")]  # fmt: skip
    if status == 200 and msg.first.startswith(b"INVITE"):
        lines.append(f"Contact: <sip:{CALLEE}@{CALLEE_ADDR[0]}:{CALLEE_ADDR[1]}>".encode())
    if body:
        lines.append(b"Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Driver:
    """Plays whole calls into one Pbx through the UDP entry point."""

    def __init__(self, pbx: Pbx, net: FakeNet) -> None:
        assert pbx.endpoint is not None
        self.pbx = pbx
        self.endpoint = pbx.endpoint
        self.net = net
        self.host = "127.0.0.1"
        self.port = pbx.sip_port()
        self.digest = DigestClient(CALLER, _password(CALLER))
        self.datagram_received = pbx.endpoint.transports._udp[0].datagram_received
        self.seq = 0

    def _feed(self, data: bytes, source: tuple[str, int]) -> None:
        self.datagram_received(data, source)

    def _pump_callee(self) -> None:
        """Let the fake callee answer everything the PBX sent it so far."""
        while self.net.to_callee:
            msg = self.net.to_callee.pop(0)
            if msg.first.startswith(b"INVITE"):
                tag = f"callee{self.seq}"
                for status, reason, body in ((100, "Trying", b""), (180, "Ringing", b""),
                                             (200, "OK", ANSWER)):  # fmt: skip
                    self._feed(_callee_answer(msg, status, reason, tag, body), CALLEE_ADDR)
            elif msg.first.startswith(b"BYE"):
                self._feed(_callee_answer(msg, 200, "OK", ""), CALLEE_ADDR)

    def _request(
        self, method: str, branch: str, cseq: int, call_id: str, to_tag: str | None,
        extra: str = "", body: bytes = b"",
    ) -> bytes:  # fmt: skip
        to = f"<sip:{CALLEE}@{self.host}>" + (f";tag={to_tag}" if to_tag else "")
        head = (
            f"{method} sip:{CALLEE}@{self.host}:{self.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {CALLER_ADDR[0]}:{CALLER_ADDR[1]};branch={branch};rport\r\n"
            f"From: <sip:{CALLER}@{self.host}>;tag=from{self.seq}\r\n"
            f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method.split()[0]}\r\n"
            f"Contact: <sip:{CALLER}@{CALLER_ADDR[0]}:{CALLER_ADDR[1]}>\r\n"
            f"Max-Forwards: 70\r\n{extra}"
        )
        if body:
            head += "X-Call-Type: sipp-test\r\nContent-Type: application/sdp\r\n"
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    def _expect(self, status: int) -> Sent:
        found = [m for m in self.net.to_caller if m.status == status]
        if not found:
            got = [m.first for m in self.net.to_caller]
            raise RuntimeError(f"call {self.seq}: expected {status}, the caller got {got}")
        return found[-1]

    async def call(self) -> None:
        """One whole call; raises when the PBX answers anything unexpected."""
        self.seq += 1
        n, net, uri = self.seq, self.net, f"sip:{CALLEE}@{self.host}:{self.port}"
        call_id = f"cpu-{n}@driver"
        net.to_caller.clear()
        self._feed(self._request("INVITE", f"z9hG4bK-{n}-1", 1, call_id, None, body=OFFER),
                   CALLER_ADDR)  # fmt: skip
        challenge = self._expect(407)
        pbx_tag = challenge.one(b"to").split(b";tag=")[1].decode()
        self._feed(self._request("ACK", f"z9hG4bK-{n}-1", 1, call_id, pbx_tag), CALLER_ADDR)
        auth = self.digest.authorization(
            challenge.one(b"proxy-authenticate").decode(), "INVITE", uri, OFFER
        )
        net.to_caller.clear()
        credentials = f"Proxy-Authorization: {auth}\r\n"
        self._feed(self._request("INVITE", f"z9hG4bK-{n}-2", 2, call_id, None, credentials, OFFER),
                   CALLER_ADDR)  # fmt: skip
        for _ in range(200):  # the relay binds its ports in a task
            if net.to_callee:
                break
            await asyncio.sleep(0)
        self._pump_callee()
        ok = self._expect(200)
        tag = ok.one(b"to").split(b";tag=")[1].decode()
        self._feed(self._request("ACK", f"z9hG4bK-{n}-3", 2, call_id, tag), CALLER_ADDR)
        net.to_caller.clear()
        self._feed(self._request("BYE", f"z9hG4bK-{n}-4", 3, call_id, tag), CALLER_ADDR)
        self._pump_callee()
        self._expect(200)
        await asyncio.sleep(0)


async def _started(data_dir: Path) -> tuple[Pbx, FakeNet]:
    config = PbxConfig(
        data_dir=data_dir, listen=(Listen("127.0.0.1", 0, ("UDP",)),), rtp_ports=RTP_PORTS,
        qualify_interval=0, auth_algorithms=("MD5",),
    )  # fmt: skip
    pbx = Pbx(config)
    await pbx.start()
    assert pbx.store is not None and pbx.endpoint is not None
    for number in (CALLER, CALLEE):
        pbx.store.add_extension(number, _password(number), f"Bench {number}")
    contact = f"sip:{CALLEE}@{CALLEE_ADDR[0]}:{CALLEE_ADDR[1]}"
    pbx.store.upsert_binding(Binding(CALLEE, contact, *CALLEE_ADDR, "UDP", time.time() + 3600))
    listener = pbx.endpoint.transports._udp[0]
    net = FakeNet(real=listener._transport)
    listener._transport = net  # type: ignore[assignment]
    return pbx, net


@dataclass(frozen=True, slots=True)
class Result:
    calls: int
    cpu_s: float
    wall_s: float
    cdrs: int
    best_s: float  # CPU per call of the cheapest block of BLOCK calls (least disturbed)
    median_s: float

    @property
    def ms_per_call(self) -> float:
        return 1000 * self.cpu_s / self.calls


async def measure(calls: int = 400, warmup: int = 50, budget_s: float = 30.0) -> Result:
    """CPU per call over at most `calls` calls (fewer when `budget_s` of wall time runs out)."""
    with tempfile.TemporaryDirectory(prefix="calls-cpu-") as tmp:
        pbx, net = await _started(Path(tmp))
        settings = tune_gc()  # as `deskpbx serve` does once it listens
        try:
            driver = Driver(pbx, net)
            for _ in range(warmup):
                await driver.call()
            start_cpu, start_wall, done = time.process_time(), time.monotonic(), 0
            blocks: list[float] = []
            while done < calls and time.monotonic() - start_wall < budget_s:
                block_start = time.process_time()
                for _ in range(BLOCK):
                    await driver.call()
                blocks.append((time.process_time() - block_start) / BLOCK)
                done += BLOCK
            await pbx.aclose()  # CDRs still queued are written: part of the cost
            cpu, wall = time.process_time() - start_cpu, time.monotonic() - start_wall
            cdrs = _count_cdrs(Path(tmp))
        finally:
            await pbx.aclose()
            restore_gc(settings)
    return Result(done, cpu, wall, cdrs, min(blocks), statistics.median(blocks))


def _count_cdrs(data_dir: Path) -> int:
    from pbx.store import Store

    with Store.in_dir(data_dir) as store:
        return len(store.query_cdrs(limit=10_000))


def _quiet_info_logging() -> None:
    """INFO logging as `deskpbx serve` sets it up, into a sink: the log lines cost CPU too."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    logging.basicConfig(level=logging.INFO, stream=io.StringIO(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip


def run_measure(calls: int = 400, budget_s: float = 30.0) -> Result:
    """`measure()` on a loop of its own (uvloop where installed, as serve uses); the logging
    set-up of the calling process is put back afterwards."""
    from pbx.net.transport import new_event_loop

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    _quiet_info_logging()
    loop = new_event_loop()
    try:
        return loop.run_until_complete(measure(calls=calls, budget_s=budget_s))
    finally:
        loop.close()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def main(argv: list[str]) -> int:
    calls = int(argv[0]) if argv and argv[0].isdigit() else 400
    if "--profile" in argv:
        import cProfile

        out = argv[argv.index("--profile") + 1]
        profiler = cProfile.Profile()
        profiler.enable()
        result = run_measure(calls)
        profiler.disable()
        profiler.dump_stats(out)
    else:
        result = run_measure(calls)
    print(
        f"{result.calls} calls: {result.ms_per_call:.3f} ms CPU per call overall, best block "
        f"{1000 * result.best_s:.3f} ms, median block {1000 * result.median_s:.3f} ms "
        f"({result.cpu_s:.2f} s CPU, {result.wall_s:.2f} s wall, {result.cdrs} CDRs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
