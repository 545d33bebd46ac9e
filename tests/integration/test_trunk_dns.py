"""Trunks given by domain name, located through DNS SRV (RFC 3263) served by a real dnsmasq.

The carrier `carrier.test` publishes `_sip._udp.carrier.test` with two servers, both SIPp
on 127.0.0.1 with their own ports: the lower priority is tried first, and when it answers
503 (or nothing) the next one takes the call. Calls from any of the carrier's servers are
recognised as the trunk's. The PBX asks only the test's dnsmasq (`dns_servers`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from pbx.outbound import OutboundDialer
from pbx.store import Disposition, Store
from pbx.store.trunks import Did, Route, TargetKind, Trunk
from tests.integration.pbx_harness import RunningPbx, start_pbx
from tests.integration.peers.dnsmasq import DNSMASQ, Dnsmasq
from tests.integration.peers.sipp import SIPP
from tests.integration.ports import free_port
from tests.integration.test_trunk_sipp import answered_inbound, call, carrier, provision

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
    pytest.mark.skipif(DNSMASQ is None, reason="dnsmasq not installed (Debian dnsmasq-base)"),
]

SRV = "_sip._udp.carrier.test"
HOSTS = [("main.carrier.test", "127.0.0.1"), ("backup.carrier.test", "127.0.0.1")]
TRUNK = Trunk("alpha", "carrier.test", srv=True, caller_id="+4930111", qualify=False)
ROUTE = Route("national", ("0|Z.",), ("alpha",))


@pytest.fixture
def servers() -> tuple[int, int]:
    main = free_port()
    backup = next(p for p in iter(free_port, None) if abs(p - main) > 8)
    return main, backup


@pytest.fixture
def dns(tmp_path: Path, servers: tuple[int, int]):
    main, backup = servers
    server = Dnsmasq(tmp_path, [(SRV, "main.carrier.test", main, 10, 0),
                                (SRV, "backup.carrier.test", backup, 20, 0)], HOSTS)  # fmt: skip
    yield server
    server.stop()


def located(pbx: RunningPbx, trunk: Trunk) -> list[tuple[str, int]]:
    """Where the running PBX finds the trunk now (waits for its lookup, bounded)."""
    locator = pbx.pbx.locator
    assert locator is not None
    hop = OutboundDialer.next_hop(trunk)
    future = asyncio.run_coroutine_threadsafe(locator.locate(hop), pbx.loop)
    return [(t.host, t.port) for t in future.result(10)]


def test_calls_go_to_the_first_srv_server_and_fail_over_to_the_next(
    tmp_path: Path, servers: tuple[int, int], dns: Dnsmasq
) -> None:
    main, backup = servers
    provision(tmp_path / "pbx", [TRUNK], (ROUTE,))
    pbx = start_pbx(tmp_path / "pbx", dns_servers=(dns.server,))
    try:
        assert located(pbx, TRUNK) == [("127.0.0.1", main), ("127.0.0.1", backup)]
        failing = carrier(tmp_path, "carrier_reject.xml", main, FAIL_CODE="503",
                          FAIL_REASON="Service Unavailable")  # fmt: skip
        answering = carrier(
            tmp_path, "carrier_answer.xml", backup, EXPECTED_RURI_USER="30123456",
            EXPECTED_FROM_USER="\\+4930111",
            EXPECTED_PAI="^INVITE sip:30123456@carrier\\.test SIP/2\\.0",  # the domain, no port
        )  # fmt: skip
        caller = call(pbx, tmp_path, "uac_call.xml", "030123456").wait()
        assert caller.ok, caller.log
        assert failing.wait().successful == 1  # the priority-10 server saw it and said 503
        assert answering.wait().ok
        [cdr] = pbx.wait_cdrs(1)
        assert cdr.disposition is Disposition.ANSWERED
        # the failed server now goes last, for the next call too, as the status API shows
        assert located(pbx, TRUNK) == [("127.0.0.1", backup), ("127.0.0.1", main)]
        servers = pbx.run(lambda: pbx.pbx.locator.servers(OutboundDialer.next_hop(TRUNK)))
        assert servers == [{"address": f"127.0.0.1:{backup}", "down": False},
                           {"address": f"127.0.0.1:{main}", "down": True}]  # fmt: skip
        assert f"query[SRV] {SRV}" in dns.queries()
    finally:
        pbx.stop()


def test_a_silent_server_is_passed_over_within_seconds_not_after_timer_b(
    tmp_path: Path, servers: tuple[int, int], dns: Dnsmasq
) -> None:
    """The priority-10 server takes the INVITE and says nothing (not even 100 Trying): after
    SILENT_SERVER_S (5 s) the call goes to the next server, not after Timer B's 32 s."""
    main, backup = servers
    provision(tmp_path / "pbx", [TRUNK], (ROUTE,))
    pbx = start_pbx(tmp_path / "pbx", dns_servers=(dns.server,))
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", main))  # reads nothing, answers nothing
    try:
        answering = carrier(
            tmp_path, "carrier_answer.xml", backup, EXPECTED_RURI_USER="30123456",
            EXPECTED_FROM_USER="\\+4930111", EXPECTED_PAI="^INVITE sip:30123456@carrier",
        )  # fmt: skip
        caller = call(pbx, tmp_path, "uac_call.xml", "030123456").wait()
        assert caller.ok, caller.log
        assert answering.wait().ok
        [cdr] = pbx.wait_cdrs(1)
        assert cdr.disposition is Disposition.ANSWERED and cdr.answer is not None
        assert 4.5 < cdr.answer - cdr.start < 15  # the silence, not Timer B (32 s)
        assert silent.recv(65535).startswith(b"INVITE ")  # it was asked first
        servers = pbx.run(lambda: pbx.pbx.locator.servers(OutboundDialer.next_hop(TRUNK)))
        assert servers[-1] == {"address": f"127.0.0.1:{main}", "down": True}
    finally:
        silent.close()
        pbx.stop()


def test_a_passed_over_server_that_wakes_up_is_cancelled_and_the_call_goes_on(
    tmp_path: Path, servers: tuple[int, int], dns: Dnsmasq
) -> None:
    """The silent server rings at 6 s, while the next server's phone still rings: it gets the
    CANCEL that was waiting for it (RFC 3261 9.1), and its 487 does not end the call, which
    the next server answers at about 9 s."""
    main, backup = servers
    provision(tmp_path / "pbx", [TRUNK], (ROUTE,))
    pbx = start_pbx(tmp_path / "pbx", dns_servers=(dns.server,))
    try:
        late = carrier(tmp_path, "carrier_wakes_late.xml", main, WAKE_MS="6000")
        answering = carrier(tmp_path, "carrier_ring_answer.xml", backup, RING_MS="4000")
        caller = call(pbx, tmp_path, "uac_call.xml", "030123456").wait()
        assert caller.ok, caller.log
        assert late.wait().ok  # 180, CANCEL, 200, 487, ACK
        assert answering.wait().ok
        [cdr] = pbx.wait_cdrs(1)
        assert cdr.disposition is Disposition.ANSWERED and cdr.answer is not None
        assert cdr.answer - cdr.start > 8.5  # answered by the next server, after the 487
    finally:
        pbx.stop()


def test_calls_from_any_srv_server_of_the_carrier_are_the_trunks(
    tmp_path: Path, servers: tuple[int, int], dns: Dnsmasq
) -> None:
    _, backup = servers
    provision(tmp_path / "pbx", [TRUNK])
    with Store.in_dir(tmp_path / "pbx") as store:
        store.add_did(Did("4930555", TargetKind.EXTENSION, "1002"))
    pbx = start_pbx(tmp_path / "pbx", dns_servers=(dns.server,))
    try:
        assert len(located(pbx, TRUNK)) == 2
        answered_inbound(pbx, tmp_path, backup, "4930555")  # from the backup server
    finally:
        pbx.stop()


def test_a_name_without_servers_fails_the_call_with_503(tmp_path: Path, dns: Dnsmasq) -> None:
    nowhere = Trunk("alpha", "nowhere.test", srv=True, qualify=False)
    provision(tmp_path / "pbx", [nowhere], (ROUTE,))
    pbx = start_pbx(tmp_path / "pbx", dns_servers=(dns.server,))
    try:
        caller = call(pbx, tmp_path, "uac_rejected.xml", "030123456", EXPECTED_CODE="503")
        assert caller.wait().ok
        [cdr] = pbx.wait_cdrs(1)
        assert (cdr.disposition, cdr.sip_code) == (Disposition.FAILED, 503)
    finally:
        pbx.stop()


def trunk_status(data: Path) -> str:
    with Store.in_dir(data) as store:
        return store.get_trunk("alpha").status.value


@pytest.fixture
def fake_carrier():
    from tests.unit.test_cli_trunk import PASSWORD, FakeCarrier

    fake = FakeCarrier(PASSWORD)
    yield fake
    fake.close()


def test_trunk_test_and_registration_follow_the_srv_records(
    tmp_path: Path, fake_carrier, capsys: pytest.CaptureFixture[str]
) -> None:
    """`deskpbx trunk test` says where DNS points; the PBX registers there, with the
    domain (no port) in the Request-URI."""
    from pbx.cli import main
    from tests.unit.test_cli_trunk import PASSWORD

    dead = free_port()  # multi.test's first server: nothing answers there
    records = [(SRV, "main.carrier.test", fake_carrier.port, 10, 0),
               ("_sip._udp.multi.test", "backup.carrier.test", dead, 5, 0),
               ("_sip._udp.multi.test", "main.carrier.test", fake_carrier.port, 10, 0)]  # fmt: skip
    server = Dnsmasq(tmp_path, records, HOSTS)
    data = tmp_path / "pbx"
    try:
        assert main(["--data-dir", str(data), "trunk", "add", "alpha", "--host", "carrier.test",
                     "--username", "acct", "--password", PASSWORD, "--register",
                     "--no-qualify"]) == 0  # fmt: skip
        capsys.readouterr()
        dns_server = f"127.0.0.1:{server.port}"
        code = main(["--data-dir", str(data), "trunk", "test", "alpha", "--dns-server", dns_server])
        lines = capsys.readouterr().out.splitlines()
        assert code == 0, lines
        assert lines[0] == (f"DNS: {SRV} (SRV) or carrier.test is 127.0.0.1:{fake_carrier.port}.")
        assert lines[1].startswith(
            f"OPTIONS: alpha at 127.0.0.1:{fake_carrier.port} over UDP answered 200 OK"
        )
        assert lines[2] == "REGISTER as acct: accepted, registered for 120 s."
        seen = len(fake_carrier.seen)
        pbx = start_pbx(data, dns_servers=(server.server,))
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # bounded: the registration's two rounds
                if trunk_status(data) == "up":
                    break
                time.sleep(0.05)
            registers = [r for r in fake_carrier.seen[seen:] if r.method == "REGISTER"]
            assert [str(r.uri) for r in registers] == ["sip:carrier.test"] * 2
            assert trunk_status(data) == "up"
        finally:
            pbx.stop()
        assert main(["--data-dir", str(data), "trunk", "add", "beta", "--host",
                     "nowhere.test"]) == 0  # fmt: skip
        capsys.readouterr()
        assert main(["--data-dir", str(data), "trunk", "test", "beta", "--dns-server",
                     dns_server]) == 1  # fmt: skip
        assert capsys.readouterr().out == (
            "DNS: no address for _sip._udp.nowhere.test (SRV) or nowhere.test. "
            "Check the host name.\n"
        )
        assert main(["--data-dir", str(data), "trunk", "add", "gamma", "--host", "multi.test",
                     "--no-qualify"]) == 0  # fmt: skip
        capsys.readouterr()
        assert main(["--data-dir", str(data), "trunk", "test", "gamma", "--dns-server",
                     dns_server, "--timeout", "0.5"]) == 0  # fmt: skip
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == (
            f"DNS: _sip._udp.multi.test (SRV) or multi.test is 127.0.0.1:{dead}, "
            f"127.0.0.1:{fake_carrier.port}."
        )
        assert lines[1].startswith(f"OPTIONS: no answer from gamma at 127.0.0.1:{dead} over UDP")
        assert lines[2].startswith(f"OPTIONS: gamma at 127.0.0.1:{fake_carrier.port} over UDP "
                                   "answered 200 OK")  # fmt: skip
    finally:
        server.stop()
