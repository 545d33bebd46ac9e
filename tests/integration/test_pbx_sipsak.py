"""The PBX against sipsak: OPTIONS pings and a digest-authenticated registration."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.integration.pbx_harness import PASSWORDS, start_pbx
from tests.integration.ports import free_port

SIPSAK = shutil.which("sipsak")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SIPSAK is None, reason="sipsak not installed (Debian package sipsak)"),
]


@pytest.fixture(scope="module")
def pbx(tmp_path_factory):
    running = start_pbx(tmp_path_factory.mktemp("pbx"))
    yield running
    running.stop()


def sipsak(*args: str) -> subprocess.CompletedProcess[str]:
    assert SIPSAK is not None
    return subprocess.run(
        [SIPSAK, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )


def test_options_is_answered_with_allow_accept_supported(pbx):
    result = sipsak("-vv", "-s", f"sip:1001@{pbx.address}")
    assert result.returncode == 0, result.stdout + result.stderr
    reply = result.stdout.split("message received:", 1)[1]
    assert "SIP/2.0 200 OK" in reply
    assert "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS" in reply
    assert "Accept: application/sdp" in reply
    assert "Supported:" in reply


def test_usrloc_registration_with_digest(pbx):
    contact_port = free_port()
    result = sipsak(
        "-U", "-vv", "-s", f"sip:1003@{pbx.address}", "-u", "1003", "-a", PASSWORDS["1003"],
        "-C", f"sip:1003@127.0.0.1:{contact_port}", "--expires=120",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    bindings = pbx.run(lambda: pbx.pbx.store.active_bindings(pbx.pbx.wall(), "1003"))
    assert [b.contact for b in bindings] == [f"sip:1003@127.0.0.1:{contact_port}"]


def test_usrloc_registration_with_wrong_password_fails(pbx):
    result = sipsak(
        "-U", "-s", f"sip:1004@{pbx.address}", "-u", "1004", "-a", "not-the-password",
        "-C", f"sip:1004@127.0.0.1:{free_port()}", "--expires=120",
    )  # fmt: skip
    assert result.returncode != 0
    assert pbx.run(lambda: pbx.pbx.store.active_bindings(pbx.pbx.wall(), "1004")) == []
