"""Trunk registration and qualify on a fake clock: auth, expiry, refresh, 423, back-off, status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbx.sip.dialog import LocalEndpoint
from pbx.sip.digest import compute_ha1, compute_response, parse_credentials
from pbx.sip.events import ResponseReceived
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.transaction import ClientKey
from pbx.sip.transport import NextHop
from pbx.store import Store
from pbx.store.trunks import Trunk, TrunkStatus
from pbx.trunks import BACKOFF_MAX, RegState, TrunkLink, TrunkManager, describe_failure

LOCAL = LocalEndpoint("<sip:pbx@127.0.0.1:5060>", "127.0.0.1:5060", "UDP")
CARRIER = Trunk(
    "alpha", "127.0.0.1", 5070, username="acct", password="carrier-pw", register=True,
    expiry=600,
)  # fmt: skip


def answer(request: Request, status: int, *headers: tuple[str, str]) -> Response:
    return request.make_response(status, to_tag="c", headers=list(headers))


def challenge(request: Request, nonce: str = "n1", stale: bool = False) -> Response:
    value = f'Digest realm="carrier", nonce="{nonce}", qop="auth"' + (", stale=true" * stale)
    return answer(request, 401, ("WWW-Authenticate", value))


def test_register_answers_the_challenge_and_refreshes_before_expiry() -> None:
    link = TrunkLink(CARRIER, now=100.0)
    assert link.due(100.0) == ["register", "options"]
    first = link.register_request(LOCAL)
    wire = parse_message(bytes(first))
    assert wire.start_line() == "REGISTER sip:127.0.0.1 SIP/2.0"
    assert wire.headers.get("To") == "<sip:acct@127.0.0.1>"
    assert wire.headers.get("Contact") == f"<sip:{link.contact_user}@127.0.0.1:5060>"
    assert wire.headers.get("Expires") == "600"
    assert link.due(100.0) == ["options"]  # no second REGISTER while one is in flight
    assert link.on_register_response(challenge(first), 100.1, first) is True
    second = link.register_request(LOCAL)
    assert second.cseq.seq == first.cseq.seq + 1 and second.call_id == first.call_id
    creds = parse_credentials(second.headers.get("Authorization") or "")
    ha1 = compute_ha1("acct", "carrier", "carrier-pw", "MD5")
    assert creds.response == compute_response(  # type: ignore[union-attr]
        ha1, "MD5", "REGISTER", "sip:127.0.0.1", "n1", qop="auth",
        nc=creds.nc, cnonce=creds.cnonce,  # type: ignore[union-attr]
    )  # fmt: skip
    assert "carrier-pw" not in bytes(second).decode()
    contact = f"<sip:{link.contact_user}@127.0.0.1:5060>;expires=300"
    assert link.on_register_response(answer(second, 200, ("Contact", contact)), 100.2, second) is (
        False
    )
    assert link.state is RegState.REGISTERED
    assert link.expires_at == pytest.approx(400.2)
    assert link.register_at == pytest.approx(340.2)  # 60 s before the granted 300 s run out
    assert link.reason == "registered for 300 s"
    third = link.register_request(LOCAL)
    assert third.headers.get("Authorization") is None  # credentials only after a challenge


def test_expires_header_and_short_expiry_refresh_at_half() -> None:
    link = TrunkLink(CARRIER, now=0.0)
    request = link.register_request(LOCAL)
    link.on_register_response(answer(request, 200, ("Expires", "90")), 10.0, request)
    assert (link.expires_at, link.register_at) == (100.0, 55.0)


def test_wrong_password_fails_and_backs_off() -> None:
    link = TrunkLink(CARRIER, now=0.0)
    first = link.register_request(LOCAL)
    assert link.on_register_response(challenge(first), 0.0, first)
    second = link.register_request(LOCAL)
    assert link.on_register_response(challenge(second, "n2"), 1.0, second) is False
    assert link.state is RegState.FAILED and link.status is TrunkStatus.DOWN
    assert link.reason == "the carrier refused the username or password (401 Unauthorized)"
    assert link.register_at == 31.0
    gaps = []
    for _ in range(8):
        now = link.register_at or 0.0
        request = link.register_request(LOCAL)
        link.on_register_response(answer(request, 503), now, request)
        gaps.append((link.register_at or 0.0) - now)
    assert gaps[:4] == [60.0, 120.0, 240.0, 480.0]
    assert gaps[-1] == BACKOFF_MAX
    # a stale nonce is retried without counting as a refusal
    request = link.register_request(LOCAL)
    link.on_register_response(challenge(request), 5000.0, request)
    again = link.register_request(LOCAL)
    assert link.on_register_response(challenge(again, "n9", stale=True), 5000.0, again)
    ok = link.register_request(LOCAL)
    link.on_register_response(answer(ok, 200), 5000.0, ok)
    assert link.state is RegState.REGISTERED and link.backoff == 30.0


def test_interval_too_brief_raises_the_expiry() -> None:
    link = TrunkLink(CARRIER, now=0.0)
    request = link.register_request(LOCAL)
    assert link.on_register_response(answer(request, 423, ("Min-Expires", "1800")), 0.0, request)
    assert link.register_request(LOCAL).headers.get("Expires") == "1800"


def test_timeout_and_qualify_status() -> None:
    link = TrunkLink(CARRIER, now=0.0, qualify_interval=30.0)
    assert link.status is TrunkStatus.UNKNOWN
    options = link.options_request(LOCAL)
    assert options.start_line() == "OPTIONS sip:127.0.0.1:5070 SIP/2.0"
    assert options.call_id != link.call_id  # the registration keeps its own Call-ID
    link.on_options_answer(1.0)
    assert link.qualify_at == 31.0 and link.status is TrunkStatus.UNKNOWN  # not registered yet
    request = link.register_request(LOCAL)
    link.on_register_response(answer(request, 200), 1.0, request)
    assert link.status is TrunkStatus.UP
    link.options_request(LOCAL)
    link.on_options_timeout(31.0)
    assert link.status is TrunkStatus.DOWN and link.next_deadline() == 61.0
    link.register_request(LOCAL)
    link.on_register_timeout(40.0)
    assert link.reason == "no answer from 127.0.0.1:5070"
    no_reg = TrunkLink(Trunk("b", "127.0.0.1", qualify=False), now=0.0)
    assert no_reg.due(0.0) == [] and no_reg.status is TrunkStatus.UP


def test_describe_failure() -> None:
    assert describe_failure(Response(404)) == (
        "the carrier does not know this account (404 Not Found)"
    )
    assert describe_failure(Response(500)).startswith("the carrier is in trouble (500")
    assert describe_failure(Response(488)).startswith("the carrier said no (488")


class FakeEndpoint:
    def __init__(self) -> None:
        self.sent: list[tuple[Request, NextHop]] = []
        self.clock = 0.0

    def now(self) -> float:
        return self.clock

    def send_request(self, request: Request, hop: NextHop) -> ClientKey:
        self.sent.append((request, hop))
        return ClientKey(f"z9hG4bK{len(self.sent)}", request.method)


class FakeFaces:
    def face(self, destination: tuple[str, int], transport: str) -> object:
        from pbx.net.local_address import LocalFace

        return LocalFace("127.0.0.1", 5060, transport)


def test_manager_routes_answers_and_writes_status(tmp_path: Path) -> None:
    async def scenario() -> None:
        with Store.in_dir(tmp_path) as store:
            store.add_trunk(CARRIER)
            store.add_trunk(Trunk("beta", "127.0.0.1", 5080, outbound_proxy="127.0.0.1:5090"))
            sip = FakeEndpoint()
            manager = TrunkManager(sip, store, FakeFaces(), wall=lambda: 1234.0)  # type: ignore[arg-type]
            manager.start()
            sent = {(r.method, h.port) for r, h in sip.sent}
            assert sent == {("REGISTER", 5070), ("OPTIONS", 5070), ("OPTIONS", 5090)}
            register = next(r for r, _ in sip.sent if r.method == "REGISTER")
            key = ClientKey(f"z9hG4bK{[r for r, _ in sip.sent].index(register) + 1}", "REGISTER")
            foreign = ResponseReceived(Response(200), ClientKey("x", "INVITE"), ("h", 1), "UDP")
            assert manager.on_response(foreign) is False
            ev = ResponseReceived(answer(register, 200), key, ("127.0.0.1", 5070), "UDP")
            assert manager.on_response(ev) is True
            user = manager.links["alpha"].contact_user
            assert manager.trunk_for_contact_user(user) == "alpha"
            assert manager.is_registered("alpha")
            options = [k for k, v in manager._pending.items() if v[0] == "beta"]
            assert manager.on_failure(options[0]) is True
            assert store.get_trunk("beta").status is TrunkStatus.DOWN
            assert store.get_trunk("beta").status_at == 1234.0
            assert manager.on_failure(options[0]) is False
            store.remove_trunk("beta")
            manager.reload()
            assert set(manager.links) == {"alpha"}
            # a trunk added by `deskpbx trunk add` in another process is picked up in time
            store.add_trunk(Trunk("gamma", "127.0.0.1", 5095))
            sip.clock = 10.0
            manager.poll()
            assert set(manager.links) == {"alpha"}
            sip.clock = 30.0
            manager.poll()
            assert set(manager.links) == {"alpha", "gamma"}
            assert (sip.sent[-1][0].method, sip.sent[-1][1].port) == ("OPTIONS", 5095)
            manager.stop()
            assert manager._handle is None

    asyncio.run(scenario())


def test_manager_registers_with_the_srv_servers_and_moves_on_when_one_is_silent(
    tmp_path: Path,
) -> None:
    """RFC 3263 §4.3: the trunk's first SRV server, then the next once it timed out."""
    from pbx.net.dns import Locator
    from tests.unit.test_dns_locator import CARRIER as DNS
    from tests.unit.test_dns_locator import Clock, FakeDns

    async def scenario() -> None:
        with Store.in_dir(tmp_path) as store:
            store.add_trunk(Trunk("alpha", "carrier.test", srv=True, username="acct",
                                  password="pw", register=True, qualify=False))  # fmt: skip
            sip, dns = FakeEndpoint(), FakeDns(DNS)
            locator = Locator(query=dns, clock=Clock(), pick=lambda total: 0)
            manager = TrunkManager(sip, store, FakeFaces(), locator=locator)  # type: ignore[arg-type]
            manager.start()
            assert sip.sent == []  # waits for DNS instead of blocking the loop
            for _ in range(20):
                await asyncio.sleep(0)
            [(register, hop)] = sip.sent
            assert (register.method, str(register.uri), hop.host, hop.port) == (
                "REGISTER", "sip:carrier.test", "192.0.2.10", 5070,
            )  # fmt: skip
            manager.poll()
            assert len(sip.sent) == 1  # one REGISTER in flight, not one per poll
            assert manager.on_failure(ClientKey("z9hG4bK1", "REGISTER")) is True
            sip.clock = BACKOFF_MAX + 1.0
            manager.poll()
            assert (sip.sent[-1][1].host, sip.sent[-1][1].port) == ("192.0.2.20", 5080)
            manager.stop()
            await locator.aclose()

    asyncio.run(scenario())
