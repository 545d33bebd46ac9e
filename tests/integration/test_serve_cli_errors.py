"""`deskpbx serve` refuses bad input with one readable line and exit status 2."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.integration.ports import free_port

pytestmark = pytest.mark.integration


def serve(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pbx.cli", "--data-dir", str(tmp_path), "serve", *args],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("deskpbx:")]


def test_sip_port_in_use(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = serve(tmp_path, "--sip", f"127.0.0.1:{port}", "--http", "off")
    assert result.returncode == 2
    [line] = error_lines(result)
    assert f"127.0.0.1:{port}" in line and "in use" in line
    assert "Traceback" not in result.stderr


def test_http_port_in_use(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http_port = taken.getsockname()[1]
        result = serve(
            tmp_path, "--sip", f"127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{http_port}",
            "--rtp-ports", "41000-41099",
        )  # fmt: skip
    assert result.returncode == 2
    [line] = error_lines(result)
    assert f"127.0.0.1:{http_port}" in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--rtp-ports", "20000"), "expected LOW-HIGH"),
        (("--rtp-ports", "30000-20000"), "LOW must be below HIGH"),
        (("--sip", "127.0.0.1:99999"), "outside 1-65535"),
        (("--sip", "[::1"), "missing ']'"),
        (("--auth-algorithms", "SHA-1"), "use SHA-256 and/or MD5"),
        (("--udp-receive-buffer", "-1"), "--udp-receive-buffer must be 0"),
        (("--max-calls", "-1"), "--max-calls and --max-call-rate must be 0"),
        (("--max-call-rate", "nan"), "--max-calls and --max-call-rate must be 0"),
        (("--auth-ban-after", "-2"), "--auth-ban-after must be 0 (off) or more"),
        (("--auth-ban-seconds", "0"), "--auth-ban-seconds positive"),
        (("--auth-ban-exempt", "office"), "--auth-ban-exempt: 'office' is not an IP address"),
    ],
)
def test_malformed_options(tmp_path, args, expected):
    result = serve(tmp_path, "--http", "off", *args)
    assert result.returncode == 2
    [line] = error_lines(result)
    assert expected in line
    assert "Traceback" not in result.stderr
