"""`deskpbx serve` as a real subprocess, for the tests that need the whole process.

Signal handling (SIGTERM/SIGINT ending calls) and process limits (the raised
open-file limit) only show in a process of its own, started as a desktop or
systemd would start it. This module holds what those tests share: the command
line (SIP on 127.0.0.1, a free RTP block, no qualify, no HTTP API), starting it
with stderr collected line by line in a thread, waiting until it logs that it
is listening, and stopping it however the test left it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pbx.store import Cdr, Store
from tests.integration.pbx_harness import rtp_block
from tests.integration.ports import free_port

SERVE_MAIN = "import sys; from pbx.cli import main; sys.exit(main())"
LISTENING = "listening on"
"""What serve logs once its SIP socket is bound."""


def serve_args(data_dir: Path, port: int) -> list[str]:
    """The command line of `deskpbx serve` on 127.0.0.1:`port` with a free RTP block."""
    low, high = rtp_block()
    return [
        sys.executable, "-c", SERVE_MAIN,
        "--data-dir", str(data_dir), "serve", "--sip", f"127.0.0.1:{port}",
        "--rtp-ports", f"{low}-{high}", "--qualify-interval", "0", "--http", "off",
    ]  # fmt: skip


@dataclass
class ServeProcess:
    """A `deskpbx serve` subprocess; `address` makes it usable by the SIPp helpers."""

    proc: subprocess.Popen[str]
    port: int
    data_dir: Path
    lines: list[str]
    """Its stderr so far, one log line per item (filled by a reader thread)."""
    reader: threading.Thread

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_log(self, text: str, timeout: float = 10.0) -> None:
        """Return once a stderr line contains `text`; AssertionError (with the last lines)
        when the process exits or `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged in time:\n" + "".join(self.lines[-30:]))

    def cdrs(self) -> list[Cdr]:
        """The CDRs in its data directory, newest first (read with a Store of our own)."""
        with Store.in_dir(self.data_dir) as store:
            return store.query_cdrs(limit=100)

    def stop(self) -> None:
        """End the process if the test has not (SIGTERM, then SIGKILL after 15 s) and
        collect its reader thread."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(10)
        self.reader.join(5)


def start_serve(data_dir: Path, *, preexec_fn: Callable[[], object] | None = None) -> ServeProcess:
    """Start `deskpbx serve` on a free port; `preexec_fn` runs in the child before exec
    (e.g. to lower a resource limit as a desktop session would)."""
    port = free_port()
    proc = subprocess.Popen(
        serve_args(data_dir, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, preexec_fn=preexec_fn, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stderr.readline, "")),  # type: ignore[union-attr]
        name=f"serve-stderr {proc.pid}",
        daemon=True,
    )
    reader.start()
    return ServeProcess(proc, port, data_dir, lines, reader)


@contextmanager
def running_serve(
    data_dir: Path,
    *,
    preexec_fn: Callable[[], object] | None = None,
    listen_timeout: float = 10.0,
) -> Iterator[ServeProcess]:
    """`deskpbx serve` started and listening for the `with` block, stopped after it."""
    serve = start_serve(data_dir, preexec_fn=preexec_fn)
    try:
        serve.wait_log(LISTENING, listen_timeout)
        yield serve
    finally:
        serve.stop()
