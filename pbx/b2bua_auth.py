"""Who is calling: digest authentication of an INVITE from an extension (RFC 3261 §22.3).

The PBX acts as a proxy towards its phones here, so it challenges with 407
and Proxy-Authenticate (RFC 3261 §22.3, RFC 7616/8760 digests); the
verified user must be the one in From, or any phone could call as another.
Sans-IO: `check()` returns the caller's extension number or the response to
send, and the B2BUA sends it.
"""

from __future__ import annotations

from pbx.auth_ban import AuthBans
from pbx.registrar import extension_ha1
from pbx.sip.digest_server import DigestServer
from pbx.sip.entropy import token_hex
from pbx.sip.message import Request, Response
from pbx.store import Store


class CallerAuth:
    """Checks INVITE credentials against the extensions in the store."""

    def __init__(self, auth: DigestServer, store: Store, bans: AuthBans | None = None) -> None:
        self.auth = auth
        self.store = store
        #: Counts each wrong password by its source address (pbx.auth_ban); None: no bans.
        self.bans = bans

    def check(self, request: Request, now: float, source_host: str = "") -> str | Response:
        """The caller's extension number, or the 407/403 to answer `request` with.

        `now` is monotonic seconds (nonce lifetimes). No digest-uri check: SIPp and
        several desk phones put the PBX's address there rather than the callee's
        Request-URI; the nonce count still stops replays. A wrong password counts against
        `source_host` (pbx.auth_ban).
        """
        credentials = request.headers.get("Proxy-Authorization")
        if credentials is None:
            return self._challenge(request, self.auth.challenge(now))
        result = self.auth.verify(credentials, request.method, self._ha1, now, request.body)
        if not result.ok:
            if self.bans is not None and source_host:
                self.bans.record(result.status, source_host, now)
            return self._challenge(request, list(result.challenges))
        from_user = getattr(request.from_.uri, "user", None)
        if result.username is None or result.username != from_user:
            reason = "Forbidden (From does not match the authenticated user)"
            return request.make_response(403, reason, to_tag=token_hex(6))
        return result.username

    def _ha1(self, username: str, realm: str, algorithm: str) -> str | None:
        return extension_ha1(self.store, self.auth.realm, username, realm, algorithm)

    @staticmethod
    def _challenge(request: Request, challenges: list[str]) -> Response:
        response = request.make_response(407, to_tag=token_hex(6))
        for value in challenges:
            response.headers.add("Proxy-Authenticate", value)
        return response
