"""The registrar: REGISTER requests in, bindings in the store, a response out (RFC 3261 §10.3).

It owns the rules, not the rows (the store keeps those) and not the wire (the
PBX hands it a parsed request and sends what it returns). Two clocks come in
as arguments: `now` (monotonic seconds) ages digest nonces, `wall` (epoch
seconds) stamps binding expiry so bindings survive a restart.

Decisions worth knowing:
- An unknown extension, a disabled one and a wrong password get the same
  answer: a 401 with a fresh challenge, so a scanner learns nothing.
- The source address and transport of each REGISTER are kept with the
  binding: behind NAT the Contact holds a private address, and requests to
  the phone go to where its REGISTER came from (RFC 3581, RFC 5626 §5 style).
- Call-ID/CSeq ordering (§10.3 step 7): a REGISTER from the same Call-ID with
  a CSeq not above the stored one is answered 500 and changes nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from operator import attrgetter

from pbx.auth_ban import AuthBans
from pbx.sip.digest_server import AuthResult, DigestServer
from pbx.sip.entropy import random_bytes
from pbx.sip.errors import ParseError
from pbx.sip.headers import Contact
from pbx.sip.message import Request, Response
from pbx.sip.uri import SipUri
from pbx.store import Binding, Extension, Store
from pbx.store.rows import new_binding

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RegistrarConfig:
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600


@dataclass(frozen=True, slots=True)
class Registered:
    """What the PBX may want to know after a successful REGISTER (for events and logs)."""

    extension: str
    bindings: tuple[Binding, ...]


class Registrar:
    """Answers REGISTER requests for the extensions in the store."""

    def __init__(
        self,
        store: Store,
        auth: DigestServer,
        config: RegistrarConfig | None = None,
        on_change: Callable[[Registered], None] | None = None,
        bans: AuthBans | None = None,
    ) -> None:
        self.store = store
        self.auth = auth
        self.config = config or RegistrarConfig()
        self.on_change = on_change
        #: Counts each wrong password by its source address (pbx.auth_ban); None: no bans.
        self.bans = bans

    # ------------------------------------------------------------------ entry point

    def handle(
        self, request: Request, source: Address, transport: str, now: float, wall: float
    ) -> Response:
        """The response to one REGISTER (authentication, then binding changes)."""
        try:
            return self._handle(request, source, transport, now, wall)
        except ParseError as exc:
            return request.make_response(exc.status, exc.reason, to_tag=new_to_tag())

    def _handle(
        self, request: Request, source: Address, transport: str, now: float, wall: float
    ) -> Response:
        aor_user = _user_of(request.to.uri)
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return self._challenge(request, self.challenges(now))
        result = self.auth.verify(
            authorization,
            "REGISTER",
            self._ha1_lookup,
            now,
            request.body,
            request_uri=str(request.uri),
        )
        if not result.ok:
            log.info("REGISTER for %s from %s:%s refused: %s", aor_user, *source, result.reason)
            if self.bans is not None:
                self.bans.record(result.status, source[0], now)
            return self._challenge(request, list(result.challenges))
        if result.username != aor_user:
            return request.make_response(403, "Forbidden (not your extension)", to_tag=new_to_tag())
        contacts = request.contacts
        if not contacts:
            return self._ok(request, aor_user, wall)
        for contact in contacts:
            if contact.is_star:
                return self._remove_all(request, aor_user, contacts, wall)
        return self._update(request, aor_user, contacts, source, transport, wall, result)

    # ------------------------------------------------------------------ pieces

    def challenges(self, now: float) -> list[str]:
        """The WWW-Authenticate values for a REGISTER without credentials (§10.3 step 3); the
        REGISTER lane's first-REGISTER answer takes them from here too."""
        return self.auth.challenge(now)

    def _ha1_lookup(self, username: str, realm: str, algorithm: str) -> str | None:
        return extension_ha1(self.store, self.auth.realm, username, realm, algorithm)

    def _challenge(self, request: Request, challenges: list[str]) -> Response:
        response = request.make_response(401, to_tag=new_to_tag())
        for value in challenges:
            response.headers.add("WWW-Authenticate", value)
        return response

    def _remove_all(
        self, request: Request, aor: str, contacts: list[Contact], wall: float
    ) -> Response:
        if len(contacts) != 1 or request.expires != 0:
            return request.make_response(
                400, "Contact * needs Expires: 0 and no other Contact", to_tag=new_to_tag()
            )
        self.store.remove_bindings(aor)
        self._notify(aor, wall)
        return self._ok(request, aor, wall)

    def _update(
        self,
        request: Request,
        aor: str,
        contacts: list[Contact],
        source: Address,
        transport: str,
        wall: float,
        auth: AuthResult,
    ) -> Response:
        cfg = self.config
        header_expires = request.expires
        if header_expires is None:
            header_expires = cfg.default_expires
        call_id, seq = request.call_id, request.cseq.seq
        user_agent = request.headers.get("User-Agent") or ""
        transport = transport.upper()
        changes: list[tuple[str, Binding | None]] = []
        for contact in contacts:
            expires = contact.expires
            if expires is None:
                expires = header_expires
            if 0 < expires < cfg.min_expires:
                # §10.3 step 7: the whole request is refused, the bindings built so far
                # are thrown away unused.
                response = request.make_response(423, to_tag=new_to_tag())
                response.headers.add("Min-Expires", str(cfg.min_expires))
                return response
            uri = str(contact.uri)
            if expires == 0:
                changes.append((uri, None))
                continue
            binding = new_binding(  # Binding(...), without the frozen dataclass's toll
                extension=aor,
                contact=uri,
                source_host=source[0],
                source_port=source[1],
                transport=transport,
                expires_at=wall + min(expires, cfg.max_expires),
                q=contact.q if contact.q is not None else 1.0,
                call_id=call_id,
                cseq=seq,
                user_agent=user_agent,
                instance_id=(contact.params.get("+sip.instance") or "").strip('"'),
            )
            changes.append((uri, binding))
        bindings = self.store.apply_registration(aor, changes, call_id, seq, wall)
        if bindings is None:
            return request.make_response(500, "Out-of-order REGISTER", to_tag=new_to_tag())
        if self.on_change is not None:
            self._notify(aor, wall, bindings)
        response = self._ok(request, aor, wall, bindings)
        if auth.authentication_info:
            response.headers.add("Authentication-Info", auth.authentication_info)
        return response

    def _ok(
        self, request: Request, aor: str, wall: float, bindings: list[Binding] | None = None
    ) -> Response:
        """200 listing the AOR's current bindings (§10.3 step 8); `bindings` when known."""
        response = request.make_response(200, to_tag=new_to_tag())
        if bindings is None:
            bindings = self.store.active_bindings(wall, aor)
        for binding in bindings:
            remaining = max(0, int(binding.expires_at - wall))
            response.headers.add("Contact", f"<{binding.contact}>;expires={remaining}")
        response.headers.add("Date", _http_date(int(wall)))
        return response

    def _notify(self, aor: str, wall: float, bindings: list[Binding] | None = None) -> None:
        if self.on_change is not None:
            if bindings is None:
                bindings = self.store.active_bindings(wall, aor)
            self.on_change(Registered(aor, tuple(bindings)))


@functools.lru_cache(maxsize=4)
def _http_date(second: int) -> str:
    """The Date header value (RFC 3261 20.17) of one wall-clock second, formatted once per
    second rather than once per REGISTER."""
    return formatdate(second, usegmt=True)


def new_to_tag() -> str:
    """A To tag for our answer (RFC 3261 8.2.6.2: every final response carries one)."""
    return random_bytes(6).hex()  # token_hex(6), one call less


def _user_of(uri: object) -> str:
    """The extension number an address-of-record names (the user part of a SIP URI)."""
    if isinstance(uri, SipUri) and uri.user:
        return uri.user
    raise ParseError("To header must name an extension as sip:NUMBER@host", 400)


def extension_ha1(
    store: Store, our_realm: str, username: str, realm: str, algorithm: str
) -> str | None:
    """The stored HA1 an extension's digest is checked with (registrar and INVITE alike).

    A disabled or unknown extension, or another realm, gives None, which the
    digest server answers exactly like a wrong password.
    """
    extension = store.find_extension(username)
    if extension is None or not extension.enabled or realm != our_realm:
        return None
    field = _HA1_FIELDS.get(algorithm.upper())
    return None if field is None else field(extension)


#: The Extension field holding the HA1 of each digest algorithm (RFC 7616 §3.4.2, RFC 8760).
_HA1_FIELDS: dict[str, Callable[[Extension], str]] = {
    "MD5": attrgetter("ha1_md5"),
    "SHA-256": attrgetter("ha1_sha256"),
}
