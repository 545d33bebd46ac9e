"""The outgoing INVITE towards a trunk, challenges answered once, failover decisions, slots."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.outbound import (
    Action,
    AttemptCursor,
    CallContext,
    OutboundDialer,
    Step,
    next_request,
    split_hostport,
)
from pbx.routing import SERVICE_DOWN, SERVICE_FULL, Refusal, RoutePlan, Router, TrunkAttempt
from pbx.sip.dialog import LocalEndpoint
from pbx.sip.digest import compute_ha1, compute_response, parse_credentials
from pbx.sip.message import Request, Response, parse_message
from pbx.store import Store
from pbx.store.trunks import Route, Trunk

LOCAL = LocalEndpoint("<sip:pbx@127.0.0.1:5060>", "127.0.0.1:5060", "UDP")
CARRIER = Trunk(
    "alpha", "127.0.0.1", 5070, username="acct", password="carrier-pw", caller_id="+4930111",
    prefix="0049", send_pai=True,
)  # fmt: skip


def context(**kw: object) -> CallContext:
    values: dict[str, object] = {
        "call_id": "abc@deskpbx", "from_tag": "t1", "local": LOCAL, "caller": "201",
        "sdp": b"v=0\r\n", "display": "Alice",
        "x_headers": (("X-Account", "42"), ("Subject", "no")), **kw,
    }  # fmt: skip
    return CallContext(**values)  # type: ignore[arg-type]


def invite_for(trunk: Trunk, number: str = "30123", caller_id: str | None = None) -> Request:
    attempt = TrunkAttempt(trunk, number, trunk.caller_id if caller_id is None else caller_id)
    return OutboundDialer(None).build_invite(attempt, context())  # type: ignore[arg-type]


def test_invite_rewrites_uri_from_and_pai() -> None:
    invite = invite_for(CARRIER)
    assert invite.start_line() == "INVITE sip:004930123@127.0.0.1:5070 SIP/2.0"
    assert invite.headers.get("From") == "<sip:+4930111@127.0.0.1>;tag=t1"
    assert invite.headers.get("To") == "<sip:004930123@127.0.0.1>"
    assert invite.headers.get("P-Asserted-Identity") == "<sip:+4930111@127.0.0.1>"
    assert invite.headers.get("X-Account") is None  # stripped by default
    assert invite.headers.get("Subject") is None
    assert invite.headers.get("Content-Type") == "application/sdp"
    assert invite.body == b"v=0\r\n"
    assert parse_message(bytes(invite)).cseq.seq == 1  # a valid message on the wire


def test_invite_with_domain_proxy_tcp_and_x_headers() -> None:
    trunk = Trunk(
        "beta", "10.0.0.5", 5080, transport="TCP", domain="sip.example.net",
        outbound_proxy="127.0.0.1:5090", pass_x_headers=True,
    )  # fmt: skip
    invite = invite_for(trunk, "5551234", caller_id="")
    assert str(invite.uri) == "sip:5551234@sip.example.net;transport=tcp"
    assert invite.headers.get("Route") == "<sip:127.0.0.1:5090;lr>"
    assert invite.headers.get("From") == '"Alice" <sip:201@sip.example.net>;tag=t1'
    assert invite.headers.get("P-Asserted-Identity") is None
    assert invite.headers.get("X-Account") == "42"
    assert invite.headers.get("Via") == "SIP/2.0/UDP 127.0.0.1:5060"
    hop = OutboundDialer.next_hop(trunk)
    assert (hop.host, hop.port, hop.transport) == ("127.0.0.1", 5090, "TCP")
    assert OutboundDialer.next_hop(CARRIER).address == ("127.0.0.1", 5070)


def challenge(status: int, nonce: str = "n1", stale: bool = False) -> Response:
    name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    value = f'Digest realm="carrier", nonce="{nonce}", qop="auth", algorithm=MD5'
    if stale:
        value += ", stale=true"
    return Response(status, headers=[(name, value)])


@pytest.mark.parametrize(
    ("status", "header"), [(401, "Authorization"), (407, "Proxy-Authorization")]
)
def test_challenge_is_answered_with_the_trunk_credentials(status: int, header: str) -> None:
    invite = invite_for(CARRIER)
    invite.headers.set("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfirst;rport")
    dialer = OutboundDialer(None)  # type: ignore[arg-type]
    again = dialer.on_challenge(challenge(status), invite, CARRIER)
    assert again is not None
    assert again.cseq.seq == 2 and again.call_id == invite.call_id
    assert again.headers.get("Via") == "SIP/2.0/UDP 127.0.0.1:5060;rport"
    assert again.headers.get("From") == invite.headers.get("From")
    creds = parse_credentials(again.headers.get(header) or "")
    ha1 = compute_ha1("acct", "carrier", "carrier-pw", "MD5")
    expected = compute_response(
        ha1, "MD5", "INVITE", str(invite.uri), "n1", qop="auth", nc=creds.nc,  # type: ignore[union-attr]
        cnonce=creds.cnonce,  # type: ignore[union-attr]
    )  # fmt: skip
    assert creds.response == expected  # type: ignore[union-attr]
    assert "carrier-pw" not in bytes(again).decode()
    # the carrier rejects our credentials: give up rather than loop ...
    assert dialer.on_challenge(challenge(status, "n2"), again, CARRIER) is None
    # ... unless the nonce was merely stale
    third = dialer.on_challenge(challenge(status, "n3", stale=True), again, CARRIER)
    assert third is not None and third.cseq.seq == 3
    assert len(third.headers.getall(header)) == 1


def test_challenge_without_credentials_or_usable_digest() -> None:
    dialer = OutboundDialer(None)  # type: ignore[arg-type]
    anonymous = Trunk("anon", "127.0.0.1")
    assert dialer.on_challenge(challenge(401), invite_for(anonymous), anonymous) is None
    basic = Response(401, headers=[("WWW-Authenticate", 'Basic realm="x"')])
    assert dialer.on_challenge(basic, invite_for(CARRIER), CARRIER) is None
    assert dialer.on_challenge(Response(403), invite_for(CARRIER), CARRIER) is None


@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, True), (408, True), (500, True), (503, True), (599, True),
     (404, False), (486, False), (603, False), (480, False)],
)  # fmt: skip
def test_should_failover(status: int | None, expected: bool) -> None:
    response = None if status is None else Response(status)
    assert OutboundDialer.should_failover(response) is expected


def test_attempt_cursor_takes_and_frees_slots() -> None:
    router = Router()
    a = Trunk("a", "127.0.0.1", max_calls=1)
    b = Trunk("b", "127.0.0.1", max_calls=1)
    plan = RoutePlan("r", "123", (TrunkAttempt(a, "123", ""), TrunkAttempt(b, "123", "")))
    first = AttemptCursor(router, plan)
    assert first.next() == plan.attempts[0]
    assert router.active == {"a": 1}
    second = AttemptCursor(router, plan)
    assert second.next() == plan.attempts[1]  # a is full: the N+1th call goes to b
    third = AttemptCursor(router, plan)
    assert third.next() == SERVICE_FULL
    assert first.next() == SERVICE_DOWN  # a failed, b is full: nothing left to try
    assert router.active == {"b": 1}
    second.release()
    second.release()
    assert router.active == {}


def test_plan_uses_the_extension_permission(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        store.add_extension("201", "secret123", permission="local")
        store.add_extension("202", "secret123", permission="international")
        store.add_trunk(CARRIER)
        store.add_route(Route("intl", ("00|Z.",), ("alpha",), permission="international"))  # type: ignore[arg-type]
        dialer = OutboundDialer(store)
        assert dialer.plan("201", "0030123") == Refusal(403, "Forbidden (permission class)")
        assert dialer.plan("299", "0030123") == Refusal(403, "Forbidden")
        plan = dialer.plan("202", "0030123")
        assert isinstance(plan, RoutePlan) and plan.attempts[0].number == "30123"
        assert isinstance(dialer.plan(None, "0030123"), RoutePlan)  # API origination
        assert dialer.plan(None, "1234") == Refusal(404, "Not Found")


def test_helpers() -> None:
    assert split_hostport("proxy.example.com", 5060) == ("proxy.example.com", 5060)
    assert split_hostport("sip:[::1]:5080", 5060) == ("::1", 5080)
    request = Request(
        "INVITE", "sip:1@h", [("v", "SIP/2.0/UDP a;branch=z9hG4bKx"), ("CSeq", "7 INVITE")]
    )
    again = next_request(request, [("X-A", "1")])
    assert list(again.headers) == [("Via", "SIP/2.0/UDP a"), ("CSeq", "8 INVITE"), ("X-A", "1")]


def test_after_failure_steps() -> None:
    dialer = OutboundDialer(None)  # type: ignore[arg-type]
    invite = invite_for(CARRIER)
    retry = dialer.after_failure(challenge(407), invite, CARRIER)
    assert retry.action is Action.RETRY and retry.request is not None
    assert retry.request.headers.get("Proxy-Authorization") is not None
    refused = dialer.after_failure(challenge(407, "n2"), retry.request, CARRIER)
    assert refused == Step(Action.FAILOVER)
    assert dialer.after_failure(None, invite, CARRIER) == Step(Action.FAILOVER)
    assert dialer.after_failure(Response(503), invite, CARRIER) == Step(Action.FAILOVER)
    assert dialer.after_failure(Response(403), invite, CARRIER) == Step(Action.FAILOVER)
    assert dialer.after_failure(Response(486), invite, CARRIER) == Step(Action.FINAL)
    assert dialer.after_failure(Response(404), invite, CARRIER) == Step(Action.FINAL)
