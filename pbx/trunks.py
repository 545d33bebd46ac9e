"""Keeping trunks alive: registration to carriers and OPTIONS qualify (RFC 3261 §10.2, §11).

Theory of operation. `TrunkLink` is the sans-IO state of one trunk; time comes
in as `now` (monotonic seconds) and it hands back the requests to send:

    due(now) -> kinds ("register", "options") whose time has come
    register_request(local) / options_request(local) -> Request
    on_register_response(response, now) -> Request | None   (a retry with credentials)
    on_register_timeout(now) / on_options_answer(now) / on_options_timeout(now)
    next_deadline() -> float | None

Registration (RFC 3261 §10.2): REGISTER with our Contact (a random user part
per trunk, so an INVITE to it proves it came through the carrier we registered
with: pbx.inbound uses `TrunkManager.trunk_for_contact_user`). A 401/407 is
answered with the trunk's credentials once per nonce (RFC 3261 §22.2; a second
challenge without stale=true means wrong credentials). A 2xx gives the expiry
(our Contact's expires param, else Expires, else what we asked, §10.2.4) and
the refresh is due at max(expiry/2, expiry - 60 s) so it never runs out. A 423
raises our expiry to Min-Expires (§10.2.8) and retries at once. Any other
failure or a timeout backs off 30 s, 60 s, ... up to 10 min.

Qualify (RFC 3261 §11): OPTIONS every `qualify_interval`; any answer means up,
a timeout means down. A failed registration also means down. The status is
written to the store so routing (pbx.routing) skips a down trunk.

`TrunkManager` is the thin asyncio shell over a `SipEndpoint`: one loop timer
at the earliest deadline, responses routed back by client transaction key. The
carrier password is only given to DigestClient; nothing logged here holds it
(the -v SIP trace shows digest responses, never the password).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from pbx.net.dns import Locator
from pbx.outbound import CHALLENGE_HEADERS, OutboundDialer, offered_challenges
from pbx.sip.dialog import LocalEndpoint
from pbx.sip.digest_client import DigestClient
from pbx.sip.errors import ParseError
from pbx.sip.events import ResponseReceived
from pbx.sip.message import Request, Response
from pbx.sip.transaction import ClientKey, TransactionKey
from pbx.sip.transport import NextHop
from pbx.store.trunks import Trunk, TrunkStatus

if TYPE_CHECKING:
    from pbx.net.local_address import LocalAddresses
    from pbx.net.transport import SipEndpoint
    from pbx.store import Store

log = logging.getLogger(__name__)

REFRESH_MARGIN = 60.0
"""Seconds before expiry a registration is refreshed (at least half the expiry early)."""
BACKOFF_START = 30.0
BACKOFF_MAX = 600.0
QUALIFY_INTERVAL = 60.0
RELOAD_INTERVAL = 30.0
"""Seconds between looks at the trunk table, so `deskpbx trunk add` reaches a running PBX."""


class RegState(enum.Enum):
    NONE = "not registering"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


@dataclass(slots=True)
class TrunkLink:
    """Registration and qualify state of one trunk (see the module docstring)."""

    trunk: Trunk
    now: float
    qualify_interval: float = QUALIFY_INTERVAL
    user_agent: str = "DeskPBX"
    contact_user: str = field(default_factory=lambda: "t-" + secrets.token_hex(6))
    call_id: str = field(default_factory=lambda: secrets.token_hex(10) + "@deskpbx")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(6))
    cseq: int = 0
    state: RegState = RegState.NONE
    expiry: int = 0
    register_at: float | None = None
    expires_at: float | None = None
    backoff: float = BACKOFF_START
    qualify_at: float | None = None
    reachable: bool | None = None
    reason: str = ""
    in_flight: set[str] = field(default_factory=set)
    _client: DigestClient | None = None
    _auth: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        self.expiry = self.trunk.expiry
        if self.trunk.register:
            self.register_at = self.now
        if self.trunk.qualify and self.qualify_interval > 0:
            self.qualify_at = self.now

    # -- scheduling ---------------------------------------------------------------------

    def due(self, now: float) -> list[str]:
        kinds = []
        for kind, at in (("register", self.register_at), ("options", self.qualify_at)):
            if at is not None and at <= now and kind not in self.in_flight:
                kinds.append(kind)
        return kinds

    def next_deadline(self) -> float | None:
        times = [t for k, t in (("register", self.register_at), ("options", self.qualify_at))
                 if t is not None and k not in self.in_flight]  # fmt: skip
        return min(times, default=None)

    @property
    def status(self) -> TrunkStatus:
        if self.state is RegState.FAILED or self.reachable is False:
            return TrunkStatus.DOWN
        registered = not self.trunk.register or self.state is RegState.REGISTERED
        if registered and (self.reachable or not self.trunk.qualify):
            return TrunkStatus.UP
        return TrunkStatus.UNKNOWN

    # -- requests -----------------------------------------------------------------------

    def _base(self, method: str, uri: str, local: LocalEndpoint, to: str) -> list[tuple[str, str]]:
        self.cseq += 1
        return [
            ("Via", f"SIP/2.0/{local.transport} {local.sent_by}"),
            ("Max-Forwards", "70"),
            ("From", f"<{to}>;tag={self.from_tag}"),
            ("To", f"<{to}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} {method}"),
            ("User-Agent", self.user_agent),
        ]

    def _aor(self) -> str:
        user = self.trunk.username or self.contact_user
        return f"sip:{user}@{self.trunk.uri_domain}"

    def register_request(self, local: LocalEndpoint, expires: int | None = None) -> Request:
        """REGISTER (RFC 3261 §10.2) with credentials when a challenge is pending."""
        uri = f"sip:{self.trunk.uri_domain}"
        headers = self._base("REGISTER", uri, local, self._aor())
        headers.append(("Contact", _contact_for(local, self.contact_user)))
        headers.append(("Expires", str(self.expiry if expires is None else expires)))
        if self._auth is not None:
            headers.append(self._auth)
            self._auth = None
        self.in_flight.add("register")
        if self.state is not RegState.REGISTERED:
            self.state = RegState.REGISTERING
        return Request("REGISTER", uri, headers)

    def options_request(self, local: LocalEndpoint) -> Request:
        uri = f"sip:{self.trunk.uri_domain}"
        trunk = self.trunk
        if trunk.host == trunk.uri_domain and trunk.port != 5060 and not trunk.srv:
            uri += f":{trunk.port}"
        headers = self._base("OPTIONS", uri, local, uri)
        headers[2] = ("From", f"<sip:pbx@{local.sent_by}>;tag={self.from_tag}")
        headers[4] = ("Call-ID", secrets.token_hex(10) + "@deskpbx")  # not the REGISTER's
        headers.append(("Accept", "application/sdp"))
        self.in_flight.add("options")
        return Request("OPTIONS", uri, headers)

    # -- answers ------------------------------------------------------------------------

    def on_register_response(self, response: Response, now: float, sent: Request) -> bool:
        """Take a final answer to a REGISTER; True when it must be re-sent (credentials, 423)."""
        self.in_flight.discard("register")
        status = response.status
        if 200 <= status < 300:
            self._registered(response, now)
            return False
        if status in CHALLENGE_HEADERS and self.answer_challenge(response, sent):
            self.register_at = now
            return True
        if status == 423 and (minimum := _int(response.headers.get("Min-Expires"))):
            if minimum > self.expiry:
                self.expiry = minimum
                self.register_at = now
                return True
        self._failed(now, describe_failure(response))
        return False

    def on_register_timeout(self, now: float) -> None:
        self.in_flight.discard("register")
        self._failed(now, f"no answer from {self.trunk.host}:{self.trunk.port}")

    def on_options_answer(self, now: float) -> None:
        self.in_flight.discard("options")
        self.reachable = True
        self.qualify_at = now + self.qualify_interval if self.qualify_interval > 0 else None

    def on_options_timeout(self, now: float) -> None:
        self.in_flight.discard("options")
        self.reachable = False
        self.qualify_at = now + self.qualify_interval if self.qualify_interval > 0 else None

    def answer_challenge(self, response: Response, sent: Request) -> bool:
        """Prepare credentials for the next REGISTER; False when we must not retry."""
        offered, header = CHALLENGE_HEADERS[response.status]
        challenges = [c for v in response.headers.getall(offered) for c in offered_challenges(v)]
        if not challenges or not self.trunk.username:
            return False
        if sent.headers.get(header) is not None and not any(c.stale for c in challenges):
            return False  # our credentials were refused (RFC 3261 §22.2)
        if self._client is None:
            self._client = DigestClient(self.trunk.username, self.trunk.password)
        try:
            value = self._client.authorization(challenges, "REGISTER", str(sent.uri))
        except ParseError:
            return False
        self._auth = (header, value)
        return True

    def _registered(self, response: Response, now: float) -> None:
        granted = self.expiry
        try:
            mine = [c for c in response.contacts if self.contact_user in str(c.uri)]
            contact_expires = mine[0].expires if mine else None
        except ParseError:
            contact_expires = None
        header = _int(response.headers.get("Expires"))
        granted = contact_expires if contact_expires is not None else (header or granted)
        self.state = RegState.REGISTERED
        self.backoff = BACKOFF_START
        self.expires_at = now + granted
        self.register_at = now + max(granted / 2, granted - REFRESH_MARGIN)
        self.reason = f"registered for {granted} s"

    def _failed(self, now: float, reason: str) -> None:
        self.state = RegState.FAILED
        self.expires_at = None
        self.reason = reason
        self.register_at = now + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)


_FAILURE_WORDS = {
    401: "the carrier refused the username or password",
    403: "the carrier refused the username or password",
    407: "the carrier refused the username or password",
    404: "the carrier does not know this account",
}


def describe_failure(response: Response) -> str:
    """A sentence a user understands, with the carrier's own status for support calls."""
    words = _FAILURE_WORDS.get(response.status)
    if words is None:
        words = "the carrier is in trouble" if response.status >= 500 else "the carrier said no"
    return f"{words} ({response.status} {response.reason})"


def _contact_for(local: LocalEndpoint, user: str) -> str:
    """Our Contact with `user` as its user part: <sip:pbx@h:p> -> <sip:USER@h:p>."""
    inner = local.contact.strip("<>")
    scheme, _, rest = inner.partition(":")
    hostpart = rest.split("@", 1)[-1]
    return f"<{scheme}:{user}@{hostpart}>"


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


# ------------------------------------------------------------------------------- shell


class TrunkManager:
    """Runs a TrunkLink per enabled trunk on the PBX's SipEndpoint.

    The server routes events here first: `on_response(ev) -> bool` and
    `on_failure(tx) -> bool` return True when the transaction was ours.
    """

    def __init__(
        self,
        endpoint: SipEndpoint,
        store: Store,
        faces: LocalAddresses,
        *,
        user_agent: str = "DeskPBX",
        qualify_interval: float = QUALIFY_INTERVAL,
        wall: Callable[[], float] = time.time,
        locator: Locator | None = None,
    ) -> None:
        self.sip = endpoint
        self.store = store
        self.faces = faces
        self.user_agent = user_agent
        self.qualify_interval = qualify_interval
        self.wall = wall
        self.links: dict[str, TrunkLink] = {}
        self._pending: dict[ClientKey, tuple[str, str, Request, NextHop]] = {}
        self._locating: set[tuple[str, str]] = set()
        #: Where trunks given by name are (pbx.net.dns); shared with the B2BUA.
        self.locator = locator if locator is not None else Locator()
        self._handle: asyncio.TimerHandle | None = None
        self._reload_at: float | None = None

    def start(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Pick up added, removed and changed trunks now (their links restart)."""
        self._reload_at = self.sip.now()
        self.poll()

    def _sync(self, now: float) -> None:
        trunks = {t.name: t for t in self.store.list_trunks() if t.enabled}
        for name in list(self.links):
            if name not in trunks or trunks[name] != _without_status(self.links[name].trunk):
                del self.links[name]
        for trunk in trunks.values():  # DNS answers ready before the carrier's first call
            for hop in OutboundDialer.hops(trunk):
                self.locator.addresses(hop)
        for name, trunk in trunks.items():
            if name not in self.links:
                self.links[name] = TrunkLink(
                    _without_status(trunk), now, self.qualify_interval, self.user_agent
                )

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._reload_at = None

    def trunk_for_contact_user(self, user: str) -> str | None:
        """The trunk that registered with Contact user `user` (and is registered now)."""
        for name, link in self.links.items():
            if link.contact_user == user and link.state is RegState.REGISTERED:
                return name
        return None

    def is_registered(self, name: str) -> bool:
        link = self.links.get(name)
        return link is not None and link.state is RegState.REGISTERED

    def poll(self) -> None:
        now = self.sip.now()
        if self._reload_at is not None and now >= self._reload_at:
            self._sync(now)
            self._reload_at = now + RELOAD_INTERVAL
        for name, link in list(self.links.items()):
            for kind in link.due(now):
                self._send(name, link, kind)
        self._arm()

    def _send(self, name: str, link: TrunkLink, kind: str) -> None:
        """A REGISTER or OPTIONS to the trunk's first server, once DNS said which it is."""
        if (name, kind) in self._locating:
            return
        self._locating.add((name, kind))
        self.locator.when_located(
            OutboundDialer.next_hop(link.trunk), partial(self._send_to, name, link, kind)
        )

    def _send_to(self, name: str, link: TrunkLink, kind: str, targets: list[NextHop]) -> None:
        self._locating.discard((name, kind))
        if self._reload_at is None or self.links.get(name) is not link:  # stopped or changed
            return
        if not targets:
            log.info("trunk %s: %s has no address", name, link.trunk.host)
            self._timed_out(link, kind)
            return
        hop = targets[0]
        face = self.faces.face(hop.address, hop.transport)
        local = face.endpoint()
        request = (
            link.register_request(local) if kind == "register" else link.options_request(local)
        )
        tx = self.sip.send_request(request, hop)
        self._pending[tx] = (name, kind, request, hop)

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._reload_at is None:  # stopped
            return
        deadlines = [d for link in self.links.values() if (d := link.next_deadline()) is not None]
        if self._reload_at is not None:
            deadlines.append(self._reload_at)
        if deadlines:
            loop = asyncio.get_running_loop()
            self._handle = loop.call_at(max(min(deadlines), loop.time()), self.poll)

    def on_response(self, ev: ResponseReceived) -> bool:
        if ev.tx is None or ev.tx not in self._pending:
            return False
        if ev.response.status < 200:
            return True
        name, kind, request, _ = self._pending.pop(ev.tx)
        link = self.links.get(name)
        if link is None:
            return True
        before = link.status
        now = self.sip.now()
        if kind == "options":
            link.on_options_answer(now)
        elif link.on_register_response(ev.response, now, request):
            self._send(name, link, "register")
        self._changed(link, before)
        self._arm()
        return True

    def on_failure(self, tx: TransactionKey) -> bool:
        entry = self._pending.pop(tx, None) if isinstance(tx, ClientKey) else None
        if entry is None:
            return False
        name, kind, _, hop = entry
        self.locator.failed(hop)  # the next try goes to the trunk's next server, if any
        link = self.links.get(name)
        if link is not None:
            self._timed_out(link, kind)
        return True

    def _timed_out(self, link: TrunkLink, kind: str) -> None:
        before = link.status
        now = self.sip.now()
        (link.on_options_timeout if kind == "options" else link.on_register_timeout)(now)
        self._changed(link, before)
        self._arm()

    def _changed(self, link: TrunkLink, before: TrunkStatus) -> None:
        status = link.status
        if status is before:
            return
        detail = f" ({link.reason})" if link.reason else ""
        log.info("trunk %s is %s%s", link.trunk.name, status.value, detail)
        self.store.set_trunk_status(link.trunk.name, status, self.wall())


def _without_status(trunk: Trunk) -> Trunk:
    """A trunk row minus its changing status columns, to tell real edits from status writes."""
    return replace(trunk, status=TrunkStatus.UNKNOWN, status_at=0.0)
