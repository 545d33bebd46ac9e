"""`deskpbx serve` raises its open-file limit before it binds anything.

Started, as desktops start processes, with a soft limit of 1,024 descriptors (a
relayed call uses four to six sockets), the running PBX must show the raised soft
limit in /proc/PID/limits (Linux; skipped elsewhere).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.pbx_harness import rtp_block
from tests.integration.ports import free_port

resource = pytest.importorskip("resource", reason="RLIMIT_NOFILE is POSIX only")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs Linux /proc"),
]


def _soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no 'Max open files' line")


def _low_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


def test_serve_raises_the_soft_open_file_limit(tmp_path: Path) -> None:
    from pbx.tuning import OPEN_FILES_WANTED

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(OPEN_FILES_WANTED, hard)
    if expected <= 1024:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    low, high = rtp_block()
    args = [
        sys.executable, "-c", "import sys; from pbx.cli import main; sys.exit(main())",
        "--data-dir", str(tmp_path), "serve", "--sip", f"127.0.0.1:{free_port()}",
        "--rtp-ports", f"{low}-{high}", "--qualify-interval", "0", "--http", "off",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_low_limit, env=env)  # fmt: skip
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        line = ""
        while "listening on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "deskpbx serve exited before listening"
        assert "listening on" in line
        assert _soft_open_files(proc.pid) == expected
    finally:
        proc.terminate()
        proc.wait(15)
