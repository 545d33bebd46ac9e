"""Trunks end to end: SIPp plays two carriers on 127.0.0.1 (one that challenges for auth,
one that fails), phones are SIPp too.

Shown here: prefix and caller-ID rewriting with P-Asserted-Identity, the carrier's 407
answered with the trunk's credentials, failover from a 503 carrier to the next trunk, the
concurrency cap (the N+1th call goes to the next trunk, or gets 503 Service Full), inbound
DIDs to an extension and to a ring group, and an unauthenticated INVITE to an outside number
answered 403 without a single packet reaching a carrier.

Carriers listen on their own free port on 127.0.0.1; inbound calls come from that port
(on loopback a trunk is recognised by address AND port, pbx.inbound). The B2BUA reaches
pbx.outbound / pbx.inbound through pbx.b2bua_trunks.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from pbx.store import Disposition, RecordPolicy, Store
from pbx.store.trunks import Did, RingGroup, Route, TargetKind, Trunk
from tests.integration.pbx_harness import PASSWORDS, RunningPbx, start_pbx
from tests.integration.peers.sipp import SIPP, Sipp, auth_field, run, scenario, write_csv
from tests.integration.ports import free_port

CARRIER_PASSWORD = "carrier-pw-4711"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]


def provision(data_dir: Path, trunks: list[Trunk], routes: tuple[Route, ...] = ()) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    with Store.in_dir(data_dir) as store:
        for number, password in PASSWORDS.items():
            store.add_extension(number, password, f"Phone {number}", permission="international")
        for trunk in trunks:
            store.add_trunk(trunk)
        for route in routes:
            store.add_route(route)


def wait_bound(sipp: Sipp, port: int, timeout: float = 5.0) -> None:
    """Return once the SIPp carrier `sipp` has bound UDP `port` on 127.0.0.1."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded in time
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on UDP 127.0.0.1:{port}: {sipp.stop().log}")


def carrier(tmp_path: Path, name: str, port: int, calls: int = 1, timeout: float = 20,
            **subst: str) -> Sipp:  # fmt: skip
    sipp = Sipp(scenario(name, tmp_path, **subst), None, local_port=port,
                media_port=free_port(step=4), calls=calls, timeout=timeout,
                workdir=tmp_path).start()  # fmt: skip
    wait_bound(sipp, port)
    return sipp


def call(pbx: RunningPbx, tmp_path: Path, name: str, number: str, caller: str = "1001",
         calls: int = 1, pause_ms: int = 1500, **subst: str):  # fmt: skip
    rows = [[caller, auth_field(caller, PASSWORDS[caller]), number]] * calls
    return Sipp(scenario(name, tmp_path, **subst), pbx.address, local_port=free_port(),
                media_port=free_port(step=4), inject=write_csv(rows, tmp_path), calls=calls,
                rate=20 if calls > 1 else None, limit=calls, pause_ms=pause_ms, timeout=20,
                workdir=tmp_path).start()  # fmt: skip


def register(pbx: RunningPbx, tmp_path: Path, user: str, port: int) -> None:
    csv = write_csv([[user, auth_field(user, PASSWORDS[user]), f"127.0.0.1:{port}", "300"]],
                    tmp_path)  # fmt: skip
    result = run(scenario("register.xml", tmp_path), pbx.address, local_port=port, inject=csv,
                 timeout=10, workdir=tmp_path)  # fmt: skip
    assert result.ok, result.log


def phone(tmp_path: Path, name: str, port: int) -> Sipp:
    return Sipp(scenario(name, tmp_path), None, local_port=port, media_port=free_port(step=4),
                calls=1, timeout=20, extra=("-aa",), workdir=tmp_path).start()  # fmt: skip


def auth_trunk(port: int, **kw: object) -> Trunk:
    values: dict[str, object] = {
        "host": "127.0.0.1", "port": port, "username": "acct", "password": CARRIER_PASSWORD,
        "caller_id": "+4930111", "prefix": "0049", "qualify": False, **kw,
    }  # fmt: skip
    return Trunk("alpha", **values)  # type: ignore[arg-type]


NATIONAL = Route("national", ("0|Z.",), ("alpha", "beta"))


@pytest.fixture
def ports() -> tuple[int, int]:
    first = free_port()
    second = next(p for p in iter(free_port, None) if abs(p - first) > 8)
    return first, second


def test_challenge_answered_with_prefix_and_caller_id(tmp_path: Path, ports) -> None:
    alpha_port, _ = ports
    provision(tmp_path / "pbx", [auth_trunk(alpha_port)], (Route("r", ("0|Z.",), ("alpha",)),))
    pbx = start_pbx(tmp_path / "pbx")
    try:
        alpha = carrier(
            tmp_path, "carrier_auth_answer.xml", alpha_port, CHALLENGE_CODE="401",
            CHALLENGE_HEADER="WWW-Authenticate", ANSWER_HEADER="Authorization",
            CARRIER_USER="acct", CARRIER_PASSWORD=CARRIER_PASSWORD,
            EXPECTED_RURI_USER="004930123456", EXPECTED_FROM_USER="\\+4930111",
        )  # fmt: skip
        caller = call(pbx, tmp_path, "uac_call.xml", "030123456").wait()
        assert caller.ok, caller.log
        carrier_result = alpha.wait()
        assert carrier_result.ok, carrier_result.log
        [cdr] = pbx.wait_cdrs(1)
        assert (cdr.caller, cdr.callee, cdr.disposition) == (
            "1001", "030123456", Disposition.ANSWERED,
        )  # fmt: skip
        assert CARRIER_PASSWORD not in repr(cdr)
    finally:
        pbx.stop()


def test_route_recording_policy_records_an_outbound_call(tmp_path: Path, ports) -> None:
    """Extensions record never; the route says always: the call is recorded (FreePBX's
    "force" on a route), and the CDR links the file."""
    alpha_port, _ = ports
    route = Route("rec", ("0|Z.",), ("alpha",), record_policy=RecordPolicy.ALWAYS)
    provision(tmp_path / "pbx", [auth_trunk(alpha_port)], (route,))
    pbx = start_pbx(tmp_path / "pbx")
    try:
        alpha = carrier(
            tmp_path, "carrier_auth_answer.xml", alpha_port, CHALLENGE_CODE="401",
            CHALLENGE_HEADER="WWW-Authenticate", ANSWER_HEADER="Authorization",
            CARRIER_USER="acct", CARRIER_PASSWORD=CARRIER_PASSWORD,
            EXPECTED_RURI_USER="004930123456", EXPECTED_FROM_USER="\\+4930111",
        )  # fmt: skip
        caller = call(pbx, tmp_path, "uac_call.xml", "030123456").wait()
        assert caller.ok, caller.log
        assert alpha.wait().ok
        [cdr] = pbx.wait_cdrs(1)
        assert cdr.disposition is Disposition.ANSWERED
        assert cdr.recording is not None and Path(cdr.recording).is_file()
    finally:
        pbx.stop()


def test_failover_from_a_failing_carrier(tmp_path: Path, ports) -> None:
    alpha_port, beta_port = ports
    beta = Trunk("beta", "127.0.0.1", beta_port, caller_id="+4930222", send_pai=True,
                 qualify=False)  # fmt: skip
    provision(tmp_path / "pbx", [auth_trunk(alpha_port), beta], (NATIONAL,))
    pbx = start_pbx(tmp_path / "pbx")
    try:
        failing = carrier(tmp_path, "carrier_reject.xml", alpha_port, FAIL_CODE="503",
                          FAIL_REASON="Service Unavailable")  # fmt: skip
        answering = carrier(
            tmp_path, "carrier_answer.xml", beta_port, EXPECTED_RURI_USER="30123456",
            EXPECTED_FROM_USER="\\+4930222",
            EXPECTED_PAI="P-Asserted-Identity: .sip:\\+4930222@127.0.0.1",
        )  # fmt: skip
        caller = call(pbx, tmp_path, "uac_call.xml", "030123456").wait()
        assert caller.ok, caller.log
        assert failing.wait().successful == 1  # it saw the INVITE and said 503
        assert answering.wait().ok
        [cdr] = pbx.wait_cdrs(1)
        assert cdr.disposition is Disposition.ANSWERED
    finally:
        pbx.stop()


def test_concurrency_cap_sends_the_next_call_to_the_next_trunk(tmp_path: Path, ports) -> None:
    alpha_port, beta_port = ports
    alpha = Trunk("alpha", "127.0.0.1", alpha_port, max_calls=1, caller_id="+4930111",
                  qualify=False)  # fmt: skip
    beta = Trunk("beta", "127.0.0.1", beta_port, max_calls=1, caller_id="+4930222",
                 qualify=False)  # fmt: skip
    provision(tmp_path / "pbx", [alpha, beta], (NATIONAL,))
    pbx = start_pbx(tmp_path / "pbx")
    try:
        subst = {"EXPECTED_RURI_USER": "30123456", "EXPECTED_PAI": "Call-ID"}
        first = carrier(tmp_path, "carrier_answer.xml", alpha_port,
                        EXPECTED_FROM_USER="\\+4930111", **subst)  # fmt: skip
        second = carrier(tmp_path, "carrier_answer.xml", beta_port,
                         EXPECTED_FROM_USER="\\+4930222", **subst)  # fmt: skip
        both = call(pbx, tmp_path, "uac_call.xml", "030123456", calls=2, pause_ms=4000)
        time.sleep(1.5)  # both calls up: every trunk is at its cap
        third = call(pbx, tmp_path, "uac_rejected.xml", "030123456", EXPECTED_CODE="503").wait()
        assert third.ok, third.log
        result = both.wait()
        assert result.ok and result.successful == 2, result.log
        alpha_result, beta_result = first.wait(), second.wait()
        assert alpha_result.successful == 1, alpha_result.log  # the first call took alpha ...
        assert beta_result.successful == 1, beta_result.log  # ... so the second went to beta
        cdrs = pbx.wait_cdrs(3)
        refused = [c for c in cdrs if c.disposition is not Disposition.ANSWERED]
        assert [(c.sip_code, c.sip_reason) for c in refused] == [(503, "Service Full")]
    finally:
        pbx.stop()


def inbound(pbx: RunningPbx, tmp_path: Path, port: int, did: str) -> Sipp:
    """A carrier's inbound call from the trunk's own address and port."""
    return Sipp(scenario("carrier_inbound.xml", tmp_path), pbx.address, local_port=port,
                media_port=free_port(step=4), inject=write_csv([[did]], tmp_path), calls=1,
                pause_ms=1500, timeout=20, workdir=tmp_path)  # fmt: skip


def test_inbound_did_rings_an_extension(tmp_path: Path, ports) -> None:
    alpha_port, _ = ports
    inbound_to_an_extension(tmp_path, auth_trunk(alpha_port), alpha_port)


def inbound_to_an_extension(tmp_path: Path, trunk: Trunk, source_port: int) -> None:
    """A PBX with `trunk` and DID 4930555 ringing 1002; the carrier calls from
    `source_port` on 127.0.0.1 and the call is answered (answered_inbound)."""
    provision(tmp_path / "pbx", [trunk])
    with Store.in_dir(tmp_path / "pbx") as store:
        store.add_did(Did("4930555", TargetKind.EXTENSION, "1002"))
    pbx = start_pbx(tmp_path / "pbx")
    try:
        answered_inbound(pbx, tmp_path, source_port, "4930555")
    finally:
        pbx.stop()


def answered_inbound(pbx: RunningPbx, tmp_path: Path, source_port: int, did: str) -> None:
    """Phone 1002 registers and answers; a carrier's call to `did` from `source_port` is
    taken without a challenge and reaches it, and its CDR says ANSWERED."""
    port = free_port()
    register(pbx, tmp_path, "1002", port)
    answering = phone(tmp_path, "uas_answer.xml", port)
    result = inbound(pbx, tmp_path, source_port, did).start().wait()
    assert result.ok, result.log
    assert answering.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert cdr.disposition is Disposition.ANSWERED


def test_inbound_did_rings_a_ring_group(tmp_path: Path, ports) -> None:
    alpha_port, _ = ports
    provision(tmp_path / "pbx", [auth_trunk(alpha_port)])
    with Store.in_dir(tmp_path / "pbx") as store:
        store.add_group(RingGroup("600", ("1002", "1003"), "Sales"))
        store.add_did(Did("+4930556", TargetKind.GROUP, "600"))
    pbx = start_pbx(tmp_path / "pbx")
    try:
        answer_port, ring_port = free_port(), free_port()
        register(pbx, tmp_path, "1002", answer_port)
        register(pbx, tmp_path, "1003", ring_port)
        answering = phone(tmp_path, "uas_answer.xml", answer_port)
        ringing = phone(tmp_path, "uas_ring.xml", ring_port)  # rings, then gets CANCEL
        result = inbound(pbx, tmp_path, alpha_port, "4930556").start().wait()
        assert result.ok, result.log
        assert answering.wait().ok
        assert ringing.wait().ok
    finally:
        pbx.stop()


def test_unauthenticated_invite_never_reaches_a_carrier(tmp_path: Path, ports) -> None:
    alpha_port, _ = ports
    provision(tmp_path / "pbx", [auth_trunk(alpha_port)], (Route("r", ("0|Z.",), ("alpha",)),))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", alpha_port))
        listener.settimeout(0.1)
        pbx = start_pbx(tmp_path / "pbx")
        try:
            stranger = Sipp(scenario("carrier_unauth_invite.xml", tmp_path), pbx.address,
                            local_port=free_port(), media_port=free_port(step=4),
                            inject=write_csv([["030123456"]], tmp_path), calls=1, timeout=10,
                            workdir=tmp_path).start().wait()  # fmt: skip
            assert stranger.ok, stranger.log
            received = []
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:  # bounded: one second of listening
                try:
                    received.append(listener.recv(65535))
                except TimeoutError:
                    continue
            assert [d for d in received if d.startswith(b"INVITE")] == []
            assert pbx.cdrs() == [] or all(c.sip_code == 403 for c in pbx.cdrs())
            assert pbx.run(lambda: pbx.pbx.b2bua.table_sizes())["calls"] == 0
        finally:
            pbx.stop()


def test_inbound_call_from_a_carriers_published_network(tmp_path: Path, ports) -> None:
    """A carrier whose host name DNS does not know (or that calls from other addresses) is
    recognised by the networks it publishes; on loopback its port must be the trunk's."""
    alpha_port, _ = ports
    ranges = Trunk("alpha", "sip.carrier.invalid", alpha_port, match_networks="127.0.0.0/8",
                   qualify=False)  # fmt: skip
    inbound_to_an_extension(tmp_path, ranges, alpha_port)
