"""The B2BUA's helper for calls out through a trunk (RFC 3261 §8.1, §22.2; RFC 3325 §9.1).

The B2BUA keeps the call; this module decides and builds:

    plan(caller_extension, digits)   -> RoutePlan | Refusal     (pbx.routing)
    attempts(plan)                   -> AttemptCursor: next() takes a trunk's call
                                        slot (its cap) and gives the TrunkAttempt,
                                        or the Refusal once every trunk is used up
    next_hop(trunk)                  -> NextHop (outbound proxy or the trunk itself)
    build_invite(attempt, context)   -> the INVITE for the B-leg
    on_challenge(response, invite, trunk) -> the INVITE again with credentials, or None
    should_failover(response | None) -> try the next trunk? (None = transaction timeout)
    after_failure(response | None, invite, trunk) -> Step: RETRY (with the request),
                                        FAILOVER (next trunk) or FINAL (the caller hears it)

The outgoing INVITE: Request-URI = trunk prefix + number @ trunk domain; From
(and P-Asserted-Identity, RFC 3325 §9.1, where the trunk asks for it) carry
the route's or trunk's caller ID at the trunk's domain; X- headers are passed
only to trunks that take them. A challenge is answered once per nonce: a
second 401/407 without stale=true means the carrier refuses our credentials
(RFC 3261 §22.2), so we fail over instead of looping. The carrier password
is only ever handed to `DigestClient`; no message here is logged.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Protocol

from pbx.routing import SERVICE_DOWN, SERVICE_FULL, Refusal, RoutePlan, Router, TrunkAttempt
from pbx.sip.dialog import LocalEndpoint
from pbx.sip.digest import Challenge, parse_challenges
from pbx.sip.digest_client import DigestClient
from pbx.sip.errors import ParseError
from pbx.sip.locate import wants_srv
from pbx.sip.message import Request, Response
from pbx.sip.transport import NextHop
from pbx.store.rows import Extension, PermissionClass
from pbx.store.trunks import Route, Trunk

API_PERMISSION = PermissionClass.INTERNATIONAL
"""API originations are trusted business systems: every route is open to them."""

CHALLENGE_HEADERS = {401: ("WWW-Authenticate", "Authorization"),
                     407: ("Proxy-Authenticate", "Proxy-Authorization")}  # fmt: skip


class RoutingStore(Protocol):
    """The part of `pbx.store.Store` the dialer reads."""

    def find_extension(self, number: str) -> Extension | None: ...
    def list_routes(self) -> list[Route]: ...
    def list_trunks(self) -> list[Trunk]: ...


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the B2BUA knows of the call when it builds the B-leg INVITE towards a trunk.

    `local` is our face towards the trunk (Via sent-by and Contact): from
    `LocalAddresses.face(next_hop(trunk).address, trunk.transport)`.
    """

    call_id: str
    from_tag: str
    local: LocalEndpoint
    caller: str
    sdp: bytes = b""
    display: str = ""
    x_headers: tuple[tuple[str, str], ...] = ()
    max_forwards: int = 70
    user_agent: str = "DeskPBX"
    allow: str = "INVITE, ACK, CANCEL, BYE, OPTIONS"


class Action(enum.Enum):
    RETRY = "retry"  # send `Step.request` (the INVITE with credentials) to the same trunk
    FAILOVER = "failover"  # free this trunk's slot, AttemptCursor.next()
    FINAL = "final"  # the caller gets this answer (486 busy, 404 unknown number, ...)


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    request: Request | None = None


@dataclass(slots=True)
class AttemptCursor:
    """The trunks of one call's plan, tried in order; holds the current trunk's call slot."""

    router: Router
    plan: RoutePlan
    index: int = 0
    current: TrunkAttempt | None = None
    sent: int = field(default=0)

    def next(self) -> TrunkAttempt | Refusal:
        """Free the current trunk's slot and take the next trunk that has room."""
        self.release()
        while self.index < len(self.plan.attempts):
            attempt = self.plan.attempts[self.index]
            self.index += 1
            if self.router.acquire(attempt.trunk):
                self.current = attempt
                self.sent += 1
                return attempt
        return SERVICE_DOWN if self.sent else SERVICE_FULL

    @property
    def remaining(self) -> bool:
        """Whether the plan has trunks not tried yet (with room or not)."""
        return self.index < len(self.plan.attempts)

    def release(self) -> None:
        """Free the slot (call ended, or this trunk failed); safe to call twice."""
        if self.current is not None:
            self.router.release(self.current.trunk.name)
            self.current = None


class OutboundDialer:
    """Plans and builds calls out through trunks, for the B2BUA (see the module docstring)."""

    def __init__(self, store: RoutingStore, router: Router | None = None) -> None:
        self.store = store
        self.router = router or Router()
        self._clients: dict[str, DigestClient] = {}

    def plan(self, caller_extension: str | None, digits: str) -> RoutePlan | Refusal:
        """The attempts for `digits` dialled by `caller_extension` (None: an API origination).

        The caller must be an authenticated extension: the B2BUA calls this only
        after digest authentication, so an unknown caller is forbidden here too.
        """
        store = self.store
        if caller_extension is None:
            permission = API_PERMISSION
        else:
            extension = store.find_extension(caller_extension)
            if extension is None or not extension.enabled:
                return Refusal(403, "Forbidden")
            permission = extension.permission
        return self.router.plan(permission, digits, store.list_routes(), store.list_trunks())

    def attempts(self, plan: RoutePlan) -> AttemptCursor:
        return AttemptCursor(self.router, plan)

    @staticmethod
    def next_hop(trunk: Trunk) -> NextHop:
        """Where the INVITE goes: the outbound proxy (host[:port]) if set, else the trunk.

        A name with no port is located through DNS SRV (RFC 3263 §4.2): the trunk's host when
        the trunk says so, an outbound proxy given without a port always."""
        if trunk.outbound_proxy:
            host, port = split_hostport(trunk.outbound_proxy, 0)
            srv = wants_srv(host, port_given=port != 0)
            return NextHop(host, port or trunk.port, trunk.transport, srv=srv)
        return NextHop(trunk.host, trunk.port, trunk.transport, srv=trunk.srv)

    @staticmethod
    def hops(trunk: Trunk) -> list[NextHop]:
        """The trunk's own server and, if set, its outbound proxy: where its requests go
        and where the carrier's requests may come from (pbx.inbound)."""
        own = NextHop(trunk.host, trunk.port, trunk.transport, srv=trunk.srv)
        return [own, OutboundDialer.next_hop(trunk)] if trunk.outbound_proxy else [own]

    @staticmethod
    def request_uri(trunk: Trunk, number: str) -> str:
        """sip:PREFIX+NUMBER@DOMAIN (with the port when the domain is the host itself)."""
        host = trunk.uri_domain
        shown = f"[{host}]" if ":" in host else host
        if host == trunk.host and trunk.port != 5060 and not trunk.srv:
            shown += f":{trunk.port}"
        suffix = ";transport=tcp" if trunk.transport == "TCP" else ""
        return f"sip:{trunk.prefix}{number}@{shown}{suffix}"

    def build_invite(self, attempt: TrunkAttempt, context: CallContext) -> Request:
        trunk = attempt.trunk
        domain = trunk.uri_domain
        uri = self.request_uri(trunk, attempt.number)
        identity = attempt.caller_id or context.caller
        display = "" if attempt.caller_id else context.display
        shown = f'"{_quoted(display)}" ' if display else ""
        headers: list[tuple[str, str]] = [
            ("Via", f"SIP/2.0/{context.local.transport} {context.local.sent_by}"),
            ("Max-Forwards", str(max(0, min(70, context.max_forwards)))),
        ]
        if trunk.outbound_proxy:
            host, port = split_hostport(trunk.outbound_proxy, trunk.port)
            headers.append(("Route", f"<sip:{host}:{port};lr>"))
        headers += [
            ("From", f"{shown}<sip:{identity}@{domain}>;tag={context.from_tag}"),
            ("To", f"<sip:{trunk.prefix}{attempt.number}@{domain}>"),
            ("Call-ID", context.call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", context.local.contact),
            ("Allow", context.allow),
            ("User-Agent", context.user_agent),
        ]
        if trunk.send_pai and identity:
            headers.append(("P-Asserted-Identity", f"<sip:{identity}@{domain}>"))
        if trunk.pass_x_headers:
            headers += [(n, v) for n, v in context.x_headers if n.lower().startswith("x-")]
        if context.sdp:
            headers.append(("Content-Type", "application/sdp"))
        return Request("INVITE", uri, headers, context.sdp)

    def on_challenge(self, response: Response, invite: Request, trunk: Trunk) -> Request | None:
        """The INVITE re-sent with credentials for a 401/407, or None (give up: fail over).

        None when the trunk has no username, the challenge is unusable, or the
        carrier rejected credentials we already sent for this realm (no stale=true).
        """
        names = CHALLENGE_HEADERS.get(response.status)
        if names is None or not trunk.username:
            return None
        offered, answer = names
        challenges = [c for v in response.headers.getall(offered) for c in offered_challenges(v)]
        if not challenges:
            return None
        sent_before = invite.headers.get(answer) is not None
        if sent_before and not any(c.stale for c in challenges):
            return None
        client = self._client(trunk)
        try:
            value = client.authorization(challenges, "INVITE", str(invite.uri), invite.body)
        except ParseError:
            return None
        return next_request(
            invite, [(answer, value)], drop=("Authorization", "Proxy-Authorization")
        )

    @staticmethod
    def should_failover(response: Response | None) -> bool:
        """True for a timeout (None), 408 and any 5xx: the next trunk is tried (issue 5)."""
        return response is None or response.status == 408 or 500 <= response.status < 600

    def after_failure(self, response: Response | None, invite: Request, trunk: Trunk) -> Step:
        """What follows a trunk's final non-2xx answer (None: timeout or transport error).

        A 401/407 is answered once per nonce (RETRY). A carrier that refuses us
        (a challenge we cannot or may not answer again, or 403) and the failures of
        `should_failover` move the call to the next trunk; any other answer, such
        as 486 Busy Here or 404, is the callee's and goes back to the caller.
        """
        if response is not None and response.status in CHALLENGE_HEADERS:
            again = self.on_challenge(response, invite, trunk)
            return Step(Action.RETRY, again) if again is not None else Step(Action.FAILOVER)
        if self.should_failover(response) or (response is not None and response.status == 403):
            return Step(Action.FAILOVER)
        return Step(Action.FINAL)

    def _client(self, trunk: Trunk) -> DigestClient:
        client = self._clients.get(trunk.name)
        if client is None or client.username != trunk.username:
            client = DigestClient(trunk.username, trunk.password)
            self._clients[trunk.name] = client
        return client


def next_request(
    request: Request, extra: list[tuple[str, str]], drop: tuple[str, ...] = ()
) -> Request:
    """`request` again as a new transaction: CSeq + 1, Via without branch, `extra` headers.

    RFC 3261 §8.1.3.5 / §22.2: same Call-ID, From tag and To; a new branch.
    """
    dropped = {d.lower() for d in drop}
    headers: list[tuple[str, str]] = []
    for name, value in request.headers:
        lowered = name.lower()
        if lowered in dropped:
            continue
        if lowered in ("via", "v") and not headers_have_via(headers):
            value = re.sub(r";\s*branch=[^;,\s]*", "", value)
        elif lowered == "cseq":
            value = f"{request.cseq.seq + 1} {request.method}"
        headers.append((name, value))
    position = next(i for i, (n, _) in enumerate(headers) if n.lower() == "cseq") + 1
    headers[position:position] = extra
    return Request(request.method, str(request.uri), headers, request.body)


def headers_have_via(headers: list[tuple[str, str]]) -> bool:
    return any(n.lower() in ("via", "v") for n, _ in headers)


def split_hostport(text: str, default_port: int) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' -> (host, port)."""
    text = text.strip().removeprefix("sip:")
    found = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?", text)
    if found is None:
        raise ValueError(f"bad host[:port] {text!r}")
    host = found.group(1) or found.group(3)
    port = found.group(2) or found.group(4)
    return host, int(port) if port else default_port


def offered_challenges(value: str) -> list[Challenge]:
    try:
        return [c for c in parse_challenges(value) if isinstance(c, Challenge)]
    except ParseError:
        return []


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
