"""Answering 401/407 digest challenges as a UA or trunk (RFC 7616 §3.4, RFC 8760, RFC 3261 §22.2).

The client picks, among the challenges of one response, the strongest algorithm it
supports (RFC 8760 §2.4: SHA-256 before MD5; unknown schemes and algorithms are
skipped, RFC 7616 §3.7), prefers qop=auth over auth-int, and falls back to the
RFC 2069 form only when the server offers no qop.  It counts requests per nonce
(`nc`, RFC 7616 §3.4) so repeated requests with a remembered nonce get a higher
count; a stale=true challenge simply brings a new nonce whose count restarts at 1,
without asking the user for the password again.

The cnonce comes from an injectable random source so tests are deterministic.
Sans-IO: no clock, no sockets.
"""

from __future__ import annotations

import base64
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable

from pbx.sip.digest import (
    SUPPORTED_ALGORITHMS,
    AuthParams,
    Challenge,
    Credentials,
    canonical_algorithm,
    compute_ha1,
    compute_response,
    hash_hex,
    parse_challenges,
)
from pbx.sip.errors import ParseError

__all__ = ["DigestClient", "choose_challenge"]

#: Preference of qop values, best first (auth-int only when it is all that is offered).
_QOP_PREFERENCE: tuple[str, ...] = ("auth", "auth-int")
_CNONCE_BYTES = 12


def _rank(challenge: Challenge) -> int:
    algorithm = canonical_algorithm(challenge.algorithm)
    return SUPPORTED_ALGORITHMS.index(algorithm) if algorithm else len(SUPPORTED_ALGORITHMS)


def choose_challenge(
    challenges: Iterable[Challenge | AuthParams | str],
) -> Challenge:
    """The Digest challenge with the strongest supported algorithm (RFC 8760 §2.4).

    Header values are parsed; other schemes and unknown algorithms are ignored.
    Raises ParseError when nothing usable is offered.
    """
    usable: list[Challenge] = []
    for item in challenges:
        parsed = parse_challenges(item) if isinstance(item, str) else [item]
        usable.extend(
            c
            for c in parsed
            if isinstance(c, Challenge) and canonical_algorithm(c.algorithm) is not None
        )
    if not usable:
        raise ParseError("No supported Digest challenge", status=401)
    return min(usable, key=_rank)


class DigestClient:
    """Builds Authorization / Proxy-Authorization values for one account."""

    def __init__(
        self,
        username: str,
        password: str,
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        cnonce_source: Callable[[], str] | None = None,
        max_nonces: int = 16,
    ) -> None:
        self.username = username
        self._password = password
        self._random = random_bytes
        self._cnonce_source = cnonce_source
        self._max_nonces = max_nonces
        self._counts: OrderedDict[str, int] = OrderedDict()

    def next_nc(self, nonce: str) -> int:
        """Count one more request with this nonce; remembers the last few nonces only."""
        count = self._counts.pop(nonce, 0) + 1
        self._counts[nonce] = count
        while len(self._counts) > self._max_nonces:
            self._counts.popitem(last=False)
        return count

    def make_cnonce(self) -> str:
        """A fresh client nonce: 96 random bits, base64url (RFC 7616 §3.4 cnonce)."""
        if self._cnonce_source is not None:
            return self._cnonce_source()
        return base64.urlsafe_b64encode(self._random(_CNONCE_BYTES)).decode("ascii")

    def credentials(
        self,
        challenge: Challenge | AuthParams | str | Iterable[Challenge | AuthParams | str],
        method: str,
        uri: str,
        body: bytes = b"",
    ) -> Credentials:
        """Answer the challenge(s) of a 401/407 for a request `method uri` with `body`."""
        items = [challenge] if isinstance(challenge, Challenge | AuthParams | str) else challenge
        chosen = choose_challenge(items)
        algorithm = canonical_algorithm(chosen.algorithm) or "MD5"
        base = algorithm.removesuffix("-sess")
        qop = next((q for q in _QOP_PREFERENCE if q in chosen.qop), None)
        if chosen.qop and qop is None:
            raise ParseError(f"No supported qop in {','.join(chosen.qop)!r}", status=401)
        nc = f"{self.next_nc(chosen.nonce):08x}" if qop else None
        cnonce = self.make_cnonce() if qop or algorithm.endswith("-sess") else None
        ha1 = compute_ha1(self.username, chosen.realm, self._password, base)
        response = compute_response(
            ha1, algorithm, method, uri, chosen.nonce, qop=qop, nc=nc, cnonce=cnonce, body=body
        )
        username = self.username
        if chosen.userhash:  # RFC 7616 §3.4.4
            username = hash_hex(base, f"{self.username}:{chosen.realm}")
        return Credentials(
            username=username,
            realm=chosen.realm,
            nonce=chosen.nonce,
            uri=uri,
            response=response,
            algorithm=algorithm,
            cnonce=cnonce,
            nc=nc,
            qop=qop,
            opaque=chosen.opaque,
            userhash=chosen.userhash,
        )

    def authorization(
        self,
        challenge: Challenge | AuthParams | str | Iterable[Challenge | AuthParams | str],
        method: str,
        uri: str,
        body: bytes = b"",
    ) -> str:
        """The Authorization (or Proxy-Authorization) header value for the request."""
        return str(self.credentials(challenge, method, uri, body))
