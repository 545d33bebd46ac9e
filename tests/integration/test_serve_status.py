"""`deskpbx status` against a real `deskpbx serve` process: running with its pid and
SIP address while it runs, not running once SIGTERM stopped it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.serve_process import SERVE_MAIN, running_serve

pytestmark = pytest.mark.integration


def status(data_dir: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_MAIN, "--data-dir", str(data_dir), "status"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return done.stdout.splitlines()


def test_status_follows_a_serve_process(tmp_path: Path) -> None:
    with running_serve(tmp_path) as serve:
        first = status(tmp_path)[0]
        assert first.startswith(f"DeskPBX 0.1.0: running (pid {serve.proc.pid}, since ")
        assert first.endswith(f"SIP on UDP 127.0.0.1:{serve.port}, TCP 127.0.0.1:{serve.port}")
    assert status(tmp_path)[0] == "DeskPBX: not running (start it with: deskpbx serve)"
