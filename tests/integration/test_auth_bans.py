"""Repeated wrong passwords from one address get it banned (pbx.auth_ban), with SIPp phones
on 127.0.0.1 (loopback is exempt by default, so these PBXs exempt nothing)."""

from __future__ import annotations

import pytest

from tests.integration.pbx_harness import PASSWORDS, RunningPbx, start_pbx
from tests.integration.peers.sipp import SIPP, SippResult, auth_field, run, scenario, write_csv
from tests.integration.ports import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


def _register(pbx: RunningPbx, tmp_path, password: str, timeout: float = 10) -> SippResult:  # type: ignore[no-untyped-def]
    port = free_port()
    name = "register.xml" if password == PASSWORDS["1002"] else "register_fail.xml"
    csv = write_csv([["1002", auth_field("1002", password), f"127.0.0.1:{port}", "300"]],
                    tmp_path)  # fmt: skip
    return run(scenario(name, tmp_path), pbx.address, local_port=port, inject=csv,
               timeout=timeout, workdir=tmp_path)  # fmt: skip


def _bans(pbx: RunningPbx) -> dict[str, object]:
    return pbx.run(lambda: pbx.pbx.status()["auth_bans"])  # type: ignore[no-any-return]


def test_wrong_register_passwords_ban_the_address(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", auth_ban_after=3, auth_ban_exempt=())
    try:
        assert _register(pbx, tmp_path, PASSWORDS["1002"]).ok  # a right one counts nothing
        for _ in range(3):
            refused = _register(pbx, tmp_path, "guess")
            assert refused.ok, refused.log  # each got its second 401
        assert _bans(pbx)["banned"] == ["127.0.0.1"]
        ignored = _register(pbx, tmp_path, PASSWORDS["1002"], timeout=2)
        assert not ignored.ok  # not even the right password gets an answer now
        stats = _bans(pbx)
        assert stats["bans"] == 1 and stats["dropped"] >= 1  # type: ignore[operator]
    finally:
        pbx.stop()


def test_wrong_invite_passwords_count_too(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", auth_ban_after=2, auth_ban_exempt=())
    try:
        for _ in range(2):
            csv = write_csv([["1001", auth_field("1001", "guess"), "1002"]], tmp_path)
            refused = run(scenario("uac_rejected.xml", tmp_path, EXPECTED_CODE="407"),
                          pbx.address, local_port=free_port(), media_port=free_port(step=4),
                          inject=csv, timeout=10, workdir=tmp_path)  # fmt: skip
            assert refused.ok, refused.log
        assert _bans(pbx)["banned"] == ["127.0.0.1"]
    finally:
        pbx.stop()


def test_loopback_is_never_banned_by_default(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", auth_ban_after=1)
    try:
        assert _register(pbx, tmp_path, "guess").ok
        assert _register(pbx, tmp_path, PASSWORDS["1002"]).ok
        assert _bans(pbx)["banned"] == []
    finally:
        pbx.stop()


def test_a_banned_address_loses_its_tcp_connection(tmp_path):
    """A guesser over TCP is not left holding a connection the PBX no longer reads."""
    import socket

    pbx = start_pbx(tmp_path / "pbx", auth_ban_after=2, auth_ban_exempt=())
    try:
        with socket.create_connection(("127.0.0.1", pbx.port), timeout=5) as conn:
            options = (f"OPTIONS sip:127.0.0.1:{pbx.port} SIP/2.0\r\n"
                       "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-ban-{n}\r\n"
                       "From: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\n"
                       "Call-ID: ban-{n}\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
                       "Content-Length: 0\r\n\r\n")  # fmt: skip
            conn.sendall(options.replace("{n}", "1").encode())
            assert conn.recv(65535).startswith(b"SIP/2.0 200")  # answered while not banned
            pbx.run(lambda: [pbx.pbx.bans.failed("127.0.0.1", pbx.pbx.monotonic())
                             for _ in range(2)])  # fmt: skip
            assert _bans(pbx)["banned"] == ["127.0.0.1"]
            conn.sendall(options.replace("{n}", "2").encode())
            assert conn.recv(65535) == b""  # closed by the PBX, no answer
    finally:
        pbx.stop()


def test_a_ban_survives_a_restart_and_the_command_line_lifts_it(tmp_path):
    """A restart does not free a scanner; `deskpbx ban lift` reaches the running PBX at its
    next minute's sweep (run here at once)."""
    from pbx.cli import main

    data = tmp_path / "pbx"
    pbx = start_pbx(data, auth_ban_after=2, auth_ban_exempt=())
    try:
        pbx.run(lambda: [pbx.pbx.bans.failed("192.0.2.9", pbx.pbx.monotonic())
                         for _ in range(2)])  # fmt: skip
        assert _bans(pbx)["banned"] == ["192.0.2.9"]
    finally:
        pbx.stop()
    pbx = start_pbx(data, auth_ban_after=2, auth_ban_exempt=())
    try:
        assert _bans(pbx)["banned"] == ["192.0.2.9"]  # kept from before the restart
        assert main(["--data-dir", str(data), "ban", "lift", "192.0.2.9"]) == 0
        pbx.run(pbx.pbx._purge_bindings)  # the minute's sweep
        assert _bans(pbx)["banned"] == []
        pbx.run(lambda: [pbx.pbx.bans.failed("192.0.2.9", pbx.pbx.monotonic())
                         for _ in range(2)])  # fmt: skip
        assert list(_kept_bans(data)) == ["192.0.2.9"]  # written when it started
        assert pbx.run(lambda: pbx.pbx.bans.lift("192.0.2.9"))  # what DELETE /api/v1/bans does
        assert _kept_bans(data) == {}
    finally:
        pbx.stop()


def _kept_bans(data) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import time

    from pbx.store import Store

    with Store.in_dir(data) as store:
        return store.active_bans(time.time())
