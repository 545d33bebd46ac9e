"""A real DNS server for tests: dnsmasq (Debian package dnsmasq-base) on 127.0.0.1.

It answers only for the records a test gives it (no upstream, no /etc/hosts), on a free
port, and stops with the test. SRV records are `(name, target, port, priority, weight)`;
host records `(name, address)`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.integration.ports import free_port

DNSMASQ = shutil.which("dnsmasq") or (
    "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
)


class Dnsmasq:
    def __init__(
        self,
        workdir: Path,
        srv: list[tuple[str, str, int, int, int]],
        hosts: list[tuple[str, str]],
    ) -> None:
        assert DNSMASQ is not None
        self.port = free_port()
        self.log = workdir / f"dnsmasq-{self.port}.log"
        args = [
            DNSMASQ, "--keep-in-foreground", f"--port={self.port}",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--conf-file=/dev/null", "--pid-file=", "--user=", "--log-queries",
            f"--log-facility={self.log}",
        ]  # fmt: skip
        args += [f"--srv-host={n},{t},{p},{prio},{w}" for n, t, p, prio, w in srv]
        args += [f"--host-record={name},{address}" for name, address in hosts]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def server(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def _wait_ready(self, timeout: float = 5.0) -> None:
        """Return once dnsmasq answers a question (bounded in time)."""
        query = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                 b"\x04test\x00\x00\x01\x00\x01")  # fmt: skip
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    output = self.process.stdout.read() if self.process.stdout else b""
                    raise RuntimeError(f"dnsmasq exited: {output.decode(errors='replace')}")
                probe.sendto(query, self.server)
                try:
                    probe.recv(512)
                    return
                except TimeoutError:
                    continue
        self.stop()
        raise TimeoutError("dnsmasq did not answer on 127.0.0.1")

    def queries(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
