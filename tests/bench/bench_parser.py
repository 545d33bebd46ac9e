"""Parser throughput: parse a datagram and read the transaction key from it.

The transaction layer needs the top Via branch, the CSeq and the Call-ID (RFC 3261
17.2.3) and the dialog layer the From tag, so each iteration parses one message
and reads exactly those. Messages are realistic: a REGISTER with digest
Authorization (901 bytes) and an INVITE with an SDP offer (950 bytes). Every
iteration parses the same bytes afresh; nothing of one parse is kept for the next.

The goal is a sustained rate, so each row's value is the mean over the whole run
(wall clock); the best 200-call window and the CPU time per message are in the note, and
two more rows give the median and the best 200-call window (the host's CPU capacity swings
in phases of seconds, so the median shows the usual phase and the best the code's speed).
Run: .venv/bin/python -m tests.bench parser
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from pbx.sip.message import parse_message
from tests.bench.rows import Row

COMMAND = ".venv/bin/python -m tests.bench parser"

REGISTER = (
    b"REGISTER sip:pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.34:5060;branch=z9hG4bK-524287-1---8c2e1a9d3f6b4e11;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:201@192.168.1.34:5060;rinstance=8a1b2c3d4e5f6a7b;transport=UDP>\r\n"
    b'To: "Front Desk" <sip:201@pbx.example.com>\r\n'
    b'From: "Front Desk" <sip:201@pbx.example.com>;tag=6b2a9d1c\r\n'
    b"Call-ID: ZDk4NmQ1ZGE1YjQ0ZjZhNmQ0YzA2ZWIxMzY1YjI4NzE\r\n"
    b"CSeq: 2 REGISTER\r\n"
    b"Expires: 3600\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"Supported: replaces, norefersub, extended-refer, timer, outbound, path\r\n"
    b"User-Agent: Yealink SIP-T46U 108.86.0.20\r\n"
    b'Authorization: Digest username="201",realm="pbx.example.com",'
    b'nonce="1700000000:6f1c2b3a4d5e6f708192a3b4c5d6e7f8",uri="sip:pbx.example.com",'
    b'response="0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",algorithm=MD5,cnonce="a1b2c3d4",'
    b"qop=auth,nc=00000001\r\n"
    b"Allow-Events: presence, kpml, talk\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

SDP = (
    b"v=0\r\n"
    b"o=- 20518 0 IN IP4 192.168.1.34\r\n"
    b"s=SDP data\r\n"
    b"c=IN IP4 192.168.1.34\r\n"
    b"t=0 0\r\n"
    b"m=audio 11796 RTP/AVP 0 8 9 18 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=fmtp:18 annexb=no\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

INVITE = (
    b"INVITE sip:2002@pbx.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.168.1.34:5060;branch=z9hG4bK-524287-1---44e3b1f0c2d9a871;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"Contact: <sip:201@192.168.1.34:5060;transport=UDP>\r\n"
    b"To: <sip:2002@pbx.example.com>\r\n"
    b'From: "Front Desk" <sip:201@pbx.example.com>;tag=9f3e2d1c\r\n'
    b"Call-ID: OTk2YjMxZjA5NWI0NmE5MGFlZDUzOTY0NmU3ZTFjOTQ\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Supported: replaces, norefersub, extended-refer, timer, X-cisco-serviceuri\r\n"
    b"User-Agent: Yealink SIP-T46U 108.86.0.20\r\n"
    b"Allow-Events: presence, kpml, talk\r\n"
    b"Content-Length: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)


def transaction_key(data: bytes) -> tuple[str | None, int, str, str, str | None]:
    msg = parse_message(data)
    cseq = msg.cseq
    return msg.via.branch, cseq.seq, cseq.method, msg.call_id, msg.from_tag


def _rate(fn: Callable[[bytes], object], data: bytes, seconds: float) -> dict[str, float]:
    """Calls per second of fn(data), run in windows of 200 calls for about `seconds` (and
    at most 50,000 windows): the best window (like timeit's minimum: the code's speed when
    it had a core to itself), the mean over all windows by wall clock, and by CPU time."""
    for _ in range(200):  # warm caches
        fn(data)
    batch, rates = 200, []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    while len(rates) < 50_000:
        started = time.perf_counter()
        for _ in range(batch):
            fn(data)
        now = time.perf_counter()
        rates.append(batch / (now - started))
        if now >= deadline:
            break
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    done = len(rates) * batch
    return {"best": max(rates), "median": statistics.median(rates), "mean": done / wall,
            "cpu": done / max(cpu, 1e-9)}  # fmt: skip


def run(quick: bool) -> list[Row]:
    seconds = 0.5 if quick else 3.0
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    for name, data, goal in (("REGISTER", REGISTER, 50_000), ("INVITE+SDP", INVITE, 30_000)):
        rate = _rate(transaction_key, data, seconds)
        rows.append(
            Row(
                name=f"parse {name} ({len(data)} B) + transaction key, mean over the run",
                value=rate["mean"],
                unit="msg/s",
                goal=f">= {goal:,} msg/s sustained",
                met=rate["mean"] >= goal,
                note=(
                    f"one process; {1e6 / rate['cpu']:.1f} us CPU per message "
                    f"({rate['cpu']:,.0f} per CPU-second); best 200-call window "
                    f"{rate['best']:,.0f} msg/s; load avg {load:.1f} on {os.cpu_count()} CPUs"
                ),
                command=COMMAND,
            )
        )
        for kind in ("median", "best"):  # the code's speed in the host's usual / fast phases
            rows.append(
                Row(
                    name=f"parse {name} + transaction key, {kind} 200-call window",
                    value=rate[kind],
                    unit="msg/s",
                    goal=f">= {goal:,} msg/s",
                    met=rate[kind] >= goal,
                    note=f"{1e6 / rate[kind]:.1f} us per message (wall clock, one window)",
                    command=COMMAND,
                )
            )
    return rows
