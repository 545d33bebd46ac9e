"""rtpengine as the comparison relay for bench_relay: start it, set up calls over ng, stop it.

rtpengine (Debian `rtpengine-daemon`) runs in userspace forwarding mode
(`--table=-1`: no kernel module) on 127.0.0.1, pinned to one CPU, with one
worker thread. Calls are created the way a SIP proxy does it, with the ng
control protocol (a cookie and a bencoded dictionary over UDP): an `offer`
carrying phone A's SDP and an `answer` carrying phone B's; the port in each
rewritten SDP is where the other phone must send.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

NG_PORT = 22230


def bencode(value: Any) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(item) for item in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes, at: int = 0) -> tuple[Any, int]:
    kind = data[at : at + 1]
    if kind == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1 : end]), end + 1
    if kind in (b"l", b"d"):
        at += 1
        items: list[Any] = []
        while data[at : at + 1] != b"e":
            item, at = bdecode(data, at)
            items.append(item)
        if kind == b"l":
            return items, at + 1
        return {items[i].decode(): items[i + 1] for i in range(0, len(items), 2)}, at + 1
    colon = data.index(b":", at)
    length = int(data[at:colon])
    return data[colon + 1 : colon + 1 + length], colon + 1 + length


def available() -> str | None:
    """None if rtpengine can run here, else why not."""
    if shutil.which("rtpengine") is None:
        return "rtpengine not installed (apt-get install -y rtpengine-daemon)"
    return None


class RtpEngine:
    """One rtpengine daemon for the duration of a `with` block."""

    def __init__(self, cpu: int, port_min: int = 20000, port_max: int = 27999) -> None:
        self.cpu = cpu
        self.port_min = port_min
        self.port_max = port_max
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2.0)
        self.sock.bind(("127.0.0.1", 0))
        self._cookie = 0

    def __enter__(self) -> RtpEngine:
        command = [
            "rtpengine",
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=3",
            "--table=-1",
            "--interface=127.0.0.1",
            f"--listen-ng=127.0.0.1:{NG_PORT}",
            f"--port-min={self.port_min}",
            f"--port-max={self.port_max}",
            "--num-threads=1",
            "--delete-delay=0",
        ]
        cpu = self.cpu

        def pin() -> None:
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, {cpu})

        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin
        )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                if self.command({"command": "ping"}).get("result") == b"pong":
                    return self
            except (TimeoutError, OSError):
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        err = self.stop()
        raise RuntimeError(f"rtpengine did not start: {err.strip()[-400:]}")

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.sock.close()

    def stop(self) -> str:
        if self.proc is None:
            return ""
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        return err.decode(errors="replace")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the daemon (all threads) so far, from /proc."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def command(self, message: dict[str, Any]) -> dict[str, Any]:
        self._cookie += 1
        cookie = b"%d" % self._cookie
        self.sock.sendto(cookie + b" " + bencode(message), ("127.0.0.1", NG_PORT))
        while True:
            data, _ = self.sock.recvfrom(65535)
            got, _, body = data.partition(b" ")
            if got == cookie:
                reply, _ = bdecode(body)
                return reply  # type: ignore[no-any-return]

    def open_calls(self, phones: list[int]) -> list[int]:
        """One call per pair of phone ports (A, B); the port each phone must send to."""
        targets: list[int] = []
        for i in range(0, len(phones), 2):
            call_id = f"bench-{i // 2}-{time.monotonic_ns()}"
            tags = {"call-id": call_id, "from-tag": f"a{i}"}
            offer = self._sdp_port({"command": "offer", **tags}, _sdp(phones[i]))
            answer = self._sdp_port(
                {"command": "answer", **tags, "to-tag": f"b{i}"}, _sdp(phones[i + 1])
            )
            targets += [answer, offer]  # A sends where B's answer points, B where the offer does
        return targets

    def _sdp_port(self, message: dict[str, Any], sdp: str) -> int:
        reply = self.command({**message, "sdp": sdp})
        if reply.get("result") != b"ok":
            raise RuntimeError(f"rtpengine {message['command']} failed: {reply}")
        found = re.search(rb"m=audio (\d+) ", reply["sdp"])
        if found is None:
            raise RuntimeError(f"rtpengine answered without an audio port: {reply['sdp']!r}")
        return int(found.group(1))


def _sdp(port: int) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )
