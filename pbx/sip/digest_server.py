"""Digest verification for a registrar or proxy, with stateless nonces (RFC 7616, RFC 8760).

Theory of operation
-------------------
The server keeps no per-challenge state.  A nonce is

    base64url( issued_ms[8] || salt[8] || BLAKE2b-128(key=secret, issued_ms || salt || realm
                                                       || context) )

so any nonce that comes back can be checked by recomputing the MAC (tampering or a
nonce from another realm/secret is INVALID_NONCE) and aged against `now` (the
FreeSWITCH / Kamailio practice; RFC 7616 §5.4 and §3.3 on nonce construction).  The MAC is
keyed BLAKE2b (RFC 7693 §2.5, a MAC by design), computed in C without OpenSSL's per-call
setup: HMAC-SHA256 through OpenSSL 3 cost more than the two MD5s of the digest itself.
`now` is whatever clock the caller uses (monotonic seconds, say) as long as it uses
the same one for challenge() and verify(); nothing here reads the clock.  The salt
makes every nonce unique so nonce counts of two phones never collide.

A nonce older than `nonce_lifetime` is stale: when the response is otherwise right,
the answer is a fresh challenge with stale=true so the phone retries with the new
nonce without asking the user for a password (RFC 7616 §3.3 "stale").  A wrong
response with an old nonce gets stale=false, as RFC 7616 requires.

Replay protection (RFC 7616 §3.3, §5.5): with qop the client counts requests per nonce
in `nc`.  The only state is a bounded map nonce -> highest nc accepted, evicted by
age (nonces past their lifetime are dropped first, then the least recently
first-used).  A request whose nc does not exceed the recorded one is REPLAY.  When a
still-valid nonce had to be evicted for room, every nonce issued no later than it and
no longer in the map is treated as stale, so eviction can never re-open a replay.
Counts are recorded only for correct responses, so garbage cannot push them up.

Verification needs only the stored HA1 for the algorithm, never the password:
`ha1_lookup(username, realm, algorithm)` returns it or None.  An unknown user is
answered exactly like a wrong password (same challenge shape, a digest is still
computed with a dummy HA1) so the reply does not reveal which accounts exist.
Comparisons of MACs and responses are constant-time (hmac.compare_digest).
"""

from __future__ import annotations

import binascii
import enum
import functools
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pbx.frozen import quick_constructor
from pbx.sip.digest import (
    SUPPORTED_ALGORITHMS,
    AuthenticationInfo,
    AuthParams,
    Challenge,
    Credentials,
    canonical_algorithm,
    compute_response,
    hash_hex,
    parse_credentials,
    quote_param,
)
from pbx.sip.entropy import random_bytes as pooled_random_bytes
from pbx.sip.errors import ParseError

__all__ = ["AuthResult", "AuthStatus", "DigestServer", "Ha1Lookup", "ReplayCache", "same_uri"]

#: (username, realm, algorithm "MD5" | "SHA-256") -> stored HA1 hex, or None if unknown.
Ha1Lookup = Callable[[str, str, str], str | None]

REPLAY_CACHE_SIZE = 65_536
"""Nonces whose nc is remembered (about 150 bytes each). A nonce answered after this many
newer ones were first used is treated as stale (see ReplayCache): at 5,000 registrations/s
that is 13 s between the 401 and the phone's answer, where 4,096 allowed 0.8 s, less than
one UDP retransmission of a loaded moment."""

_MAC_BYTES = 16
#: base64url (RFC 4648 §5) from and to the standard alphabet, for binascii.
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_NONCE_MARK = "NONCE-GOES-HERE"
_SALT_BYTES = 8


class AuthStatus(enum.Enum):
    """Outcome of verify(); everything but OK comes with fresh challenges."""

    OK = "ok"
    STALE = "stale"  # right password, nonce too old: re-challenge with stale=true
    REPLAY = "replay"  # nc not increasing for this nonce (RFC 7616 §3.4)
    BAD_RESPONSE = "bad response"  # wrong password (or wrong method/body)
    UNKNOWN_USER = "unknown user"  # looks like BAD_RESPONSE on the wire
    WRONG_REALM = "wrong realm"
    URI_MISMATCH = "uri mismatch"  # digest uri differs from Request-URI (RFC 7616 §3.4.6)
    INVALID_NONCE = "invalid nonce"  # not ours: tampered, other realm, other secret
    UNSUPPORTED_ALGORITHM = "unsupported algorithm"
    QOP_MISSING = "qop missing"  # RFC 2069 style response while those are refused
    MALFORMED = "malformed"  # the header did not parse: the caller may answer 400
    UNKNOWN_SCHEME = "unknown scheme"  # e.g. RFC 4475 regaut01 NoOneKnowsThisScheme


#: Statuses whose re-challenge says stale=true: the client proved it knows the password.
_STALE_STATUSES = frozenset({AuthStatus.STALE, AuthStatus.REPLAY})


GUESSES = frozenset({AuthStatus.BAD_RESPONSE, AuthStatus.UNKNOWN_USER})
"""Outcomes that are a wrong password (or a user that does not exist, which must look the
same): what pbx.auth_ban counts against an address."""


@dataclass(frozen=True, slots=True)
class AuthResult:
    """What verify() decided, and what to send back.

    `challenges` are WWW-Authenticate (401) or Proxy-Authenticate (407) values for
    every status but OK; `authentication_info` is the Authentication-Info value
    (rspauth, RFC 7616 §3.5) for OK.
    """

    status: AuthStatus
    username: str | None = None
    challenges: tuple[str, ...] = ()
    authentication_info: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is AuthStatus.OK


_new_result = quick_constructor(AuthResult)
"""AuthResult(...) with every field given positionally, made once per verify()."""


class ReplayCache:
    """Highest nc accepted per nonce; bounded in size, evicting by age (see module doc)."""

    def __init__(self, max_entries: int, lifetime: float) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.lifetime = lifetime
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()
        #: Issue time of the newest still-valid nonce evicted for room.
        self.horizon = float("-inf")

    def __len__(self) -> int:
        return len(self._seen)

    def forgotten(self, nonce: str, issued: float) -> bool:
        """True when this nonce's count may have been evicted: treat it as stale."""
        return nonce not in self._seen and issued <= self.horizon

    def accept(self, nonce: str, nc: int, issued: float, now: float) -> bool:
        """Record nc for nonce if it is higher than any seen; False means replay."""
        last = self._seen.get(nonce)
        if last is not None and nc <= last[0]:
            return False
        if last is None:
            self._evict(now)
        self._seen[nonce] = (nc, issued)
        return True

    def check(self, nonce: str, nc: int | None, issued: float, now: float) -> AuthStatus | None:
        """forgotten() then, with a count, accept() in one look-up: STALE for a nonce whose
        count may have been evicted, REPLAY for an nc not above the recorded one, else None
        (and the count recorded)."""
        last = self._seen.get(nonce)
        if last is None:
            if issued <= self.horizon:
                return AuthStatus.STALE
            if nc is not None:
                self._evict(now)
                self._seen[nonce] = (nc, issued)
            return None
        if nc is None:
            return None
        if nc <= last[0]:
            return AuthStatus.REPLAY
        self._seen[nonce] = (nc, issued)
        return None

    def _evict(self, now: float) -> None:
        while self._seen:
            _, (_, issued) = next(iter(self._seen.items()))
            if now - issued <= self.lifetime:
                break
            self._seen.popitem(last=False)
        while len(self._seen) >= self.max_entries:
            _, (_, issued) = self._seen.popitem(last=False)
            self.horizon = max(self.horizon, issued)


def same_uri(digest_uri: str, request_uri: str) -> bool:
    """Default digest-uri check (RFC 7616 §3.4.6): equal up to scheme/host case and <>.

    The user part and parameters stay case-sensitive; a registrar wanting the full
    RFC 3261 §19.1.4 comparison passes its own `uri_match`.
    """
    return _fold_uri(digest_uri) == _fold_uri(request_uri)


@functools.lru_cache(maxsize=1024)
def _fold_uri(uri: str) -> str:
    """`uri` without <>, scheme and host lower-cased; remembered, as every phone repeats
    its own (bounded, so made-up URIs cannot grow it)."""
    text = uri.strip().removeprefix("<").removesuffix(">")
    scheme, colon, rest = text.partition(":")
    if not colon:
        return text
    user, at, hostpart = rest.rpartition("@")
    cut = min((i for i in (hostpart.find(";"), hostpart.find("?")) if i >= 0), default=-1)
    host, tail = (hostpart, "") if cut < 0 else (hostpart[:cut], hostpart[cut:])
    return f"{scheme.lower()}:{user}{at}{host.lower()}{tail}"


class DigestServer:
    """Challenges and verifies Digest credentials for one realm, without per-nonce state."""

    def __init__(
        self,
        realm: str,
        secret: bytes | str,
        nonce_lifetime: float = 300.0,
        *,
        algorithms: Iterable[str] = ("SHA-256", "MD5"),
        qop_options: Iterable[str] = ("auth",),
        allow_rfc2069: bool = False,
        replay_cache_size: int = REPLAY_CACHE_SIZE,
        random_bytes: Callable[[int], bytes] = pooled_random_bytes,
        uri_match: Callable[[str, str], bool] = same_uri,
    ) -> None:
        self.realm = realm
        self._secret = secret.encode() if isinstance(secret, str) else secret
        if len(self._secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        self.nonce_lifetime = nonce_lifetime
        self.algorithms = tuple(_checked_algorithm(a) for a in algorithms)
        self.qop_options = tuple(qop_options)
        self.allow_rfc2069 = allow_rfc2069
        self.replay = ReplayCache(replay_cache_size, nonce_lifetime)
        self._random = random_bytes
        self._uri_match = uri_match
        self._dummy_ha1 = hmac.new(self._secret, b"unknown-user", hashlib.sha256).hexdigest()
        # BLAKE2b takes keys of up to 64 bytes; a longer secret is hashed down to one.
        long_secret = len(self._secret) > 64
        self._mac_key = hashlib.blake2b(self._secret).digest() if long_secret else self._secret
        self._realm_tail = self.realm.encode() + b"\x00"
        self._keyed_mac = hashlib.blake2b(key=self._mac_key, digest_size=_MAC_BYTES)
        self._challenges: dict[tuple[str, bool], tuple[str, str]] = {}
        #: The algorithm params _PRECHECKS accepts, in the spellings phones use.
        self._accepted_spellings = frozenset(
            spelling for a in self.algorithms for spelling in (a, a.upper(), a.lower())
        )

    # ------------------------------------------------------------------ nonces

    def _mac(self, head: bytes, context: str) -> bytes:
        data = head + self._realm_tail + context.encode() if context else head + self._realm_tail
        mac = self._keyed_mac.copy()  # the key block is compressed once, not per nonce
        mac.update(data)
        return mac.digest()

    def make_nonce(self, now: float, context: str = "") -> str:
        """A fresh stateless nonce issued at `now` (seconds)."""
        head = int(now * 1000).to_bytes(8, "big", signed=True) + self._random(_SALT_BYTES)
        raw = head + self._mac(head, context)
        encoded = binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE)
        return encoded.rstrip(b"=").decode("ascii")

    def nonce_issued(self, nonce: str, context: str = "") -> float | None:
        """Issue time of one of our nonces, or None when it is not ours or was altered."""
        try:  # base64.urlsafe_b64decode's steps, without its three Python-level calls
            padded = (nonce + "=" * (-len(nonce) % 4)).encode("ascii")
            raw = binascii.a2b_base64(padded.translate(_FROM_URLSAFE))
        except (ValueError, TypeError):  # binascii.Error, UnicodeEncodeError among them
            return None
        if len(raw) != 8 + _SALT_BYTES + _MAC_BYTES:
            return None
        head, mac = raw[: 8 + _SALT_BYTES], raw[8 + _SALT_BYTES :]
        if not hmac.compare_digest(mac, self._mac(head, context)):
            return None
        return int.from_bytes(head[:8], "big", signed=True) / 1000

    # ------------------------------------------------------------------ challenges

    def challenge(
        self,
        now: float,
        stale: bool = False,
        algorithms: Iterable[str] | None = None,
        *,
        context: str = "",
    ) -> list[str]:
        """WWW-/Proxy-Authenticate values, one per algorithm, strongest first (RFC 8760 §2.4).

        All share one nonce; a client answers exactly one of them.
        """
        nonce = self.make_nonce(now, context)
        chosen = self.algorithms if algorithms is None else algorithms
        out = []
        for algorithm in chosen:
            head, tail = self._challenge_around_nonce(algorithm, stale)
            out.append(head + nonce + tail)
        return out

    def _challenge_around_nonce(self, algorithm: str, stale: bool) -> tuple[str, str]:
        """str(Challenge(...)) split where the nonce goes, made once per (algorithm, stale):
        only the nonce differs from one challenge to the next (and it never needs escaping,
        being base64url)."""
        key = (algorithm, stale)
        found = self._challenges.get(key)
        if found is None:
            text = str(Challenge(self.realm, _NONCE_MARK, algorithm=_checked_algorithm(algorithm),
                                 qop=self.qop_options, stale=stale))  # fmt: skip
            head, _, tail = text.partition(_NONCE_MARK)
            found = self._challenges[key] = (head, tail)
        return found

    def _reject(
        self, status: AuthStatus, now: float, context: str, username: str | None, reason: str
    ) -> AuthResult:
        stale = status in _STALE_STATUSES
        challenges = tuple(self.challenge(now, stale=stale, context=context))
        return _new_result(status, username, challenges, None, reason)

    # ------------------------------------------------------------------ verification

    def verify(
        self,
        credentials: Credentials | AuthParams | str,
        method: str,
        ha1_lookup: Ha1Lookup,
        now: float,
        body: bytes | None = None,
        *,
        request_uri: str | None = None,
        context: str = "",
    ) -> AuthResult:
        """Check an Authorization/Proxy-Authorization value for a request.

        `method` is the request method (for ACK/CANCEL the one of the INVITE,
        RFC 3261 §22.4), `body` the message body for qop=auth-int, `request_uri`
        the Request-URI the digest uri must match (skipped when None).
        """
        try:
            creds = parse_credentials(credentials) if isinstance(credentials, str) else credentials
        except ParseError as exc:
            return self._reject(AuthStatus.MALFORMED, now, context, None, exc.reason)
        if isinstance(creds, AuthParams):
            return self._reject(
                AuthStatus.UNKNOWN_SCHEME, now, context, None, f"scheme {creds.scheme!r}"
            )
        checked = self._precheck(creds, request_uri, context, now)
        if isinstance(checked, tuple):
            status, reason = checked
            return self._reject(status, now, context, creds.username, reason)
        return self._check_digest(creds, method, ha1_lookup, now, body or b"", context, checked)

    def _precheck(
        self, creds: Credentials, request_uri: str | None, context: str, now: float
    ) -> tuple[AuthStatus, str] | float:
        """Everything decidable without the HA1, in RFC 7616 §3.4 order: the first failure,
        or the nonce's issue time when all pass (so the MAC is checked once per request).
        Rows are lazy: a failure's reason is worded only when it is the answer."""
        if not self._passes_prechecks(creds, request_uri):
            for failed, status, reason in _PRECHECKS:
                if failed(self, creds, request_uri):
                    return status, reason(creds, request_uri)
        issued = self.nonce_issued(creds.nonce, context)
        if issued is None:
            return AuthStatus.INVALID_NONCE, "nonce not issued by this server"
        return issued

    def _passes_prechecks(self, creds: Credentials, request_uri: str | None) -> bool:
        """True when no row of _PRECHECKS can fail: the credentials a phone sends, checked
        in one expression. False sends them through the rows, which find the failure (or
        pass all the same, for an algorithm spelled in a case not listed here)."""
        return (
            creds.realm == self.realm
            and creds.algorithm in self._accepted_spellings
            and creds.qop in self.qop_options
            and creds.nc is not None
            and bool(creds.cnonce)
            and (request_uri is None or self._uri_match(creds.uri, request_uri))
        )

    def _check_digest(
        self,
        creds: Credentials,
        method: str,
        ha1_lookup: Ha1Lookup,
        now: float,
        body: bytes,
        context: str,
        issued: float,
    ) -> AuthResult:
        algorithm = canonical_algorithm(creds.algorithm) or "MD5"
        base = algorithm.removesuffix("-sess")
        ha1 = ha1_lookup(creds.username, creds.realm, base)
        known = ha1 is not None
        expected = compute_response(
            ha1 if ha1 is not None else hash_hex(base, self._dummy_ha1),
            algorithm,
            method,
            creds.uri,
            creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
            body=body,
        )
        matches = hmac.compare_digest(expected.encode(), creds.response.lower().encode())
        if not (known and matches):
            status = AuthStatus.BAD_RESPONSE if known else AuthStatus.UNKNOWN_USER
            return self._reject(status, now, context, creds.username, "response does not match")
        age = now - issued
        if not -1.0 <= age <= self.nonce_lifetime:
            return self._reject(AuthStatus.STALE, now, context, creds.username, "nonce expired")
        nc = None if creds.nc is None else int(creds.nc, 16)
        refused = self.replay.check(creds.nonce, nc, issued, now)
        if refused is AuthStatus.STALE:
            return self._reject(refused, now, context, creds.username, "nonce expired")
        if refused is not None:
            reason = f"nc {creds.nc} already used with this nonce"
            return self._reject(refused, now, context, creds.username, reason)
        rspauth = compute_response(
            ha1 or "",
            algorithm,
            "",
            creds.uri,
            creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
        )
        info = _authentication_info(creds.qop, rspauth, creds.cnonce, creds.nc)
        return _new_result(AuthStatus.OK, creds.username, (), info, "")


def _authentication_info(qop: str | None, rspauth: str, cnonce: str | None, nc: str | None) -> str:
    """str(AuthenticationInfo(...)) of an accepted request (RFC 7616 §3.5), written directly
    when qop, cnonce and nc are all there (rspauth is hex and needs no quoting)."""
    if qop is None or cnonce is None or nc is None:
        return str(AuthenticationInfo(qop=qop, rspauth=rspauth, cnonce=cnonce, nc=nc))
    return f'qop={qop}, rspauth="{rspauth}", cnonce={quote_param(cnonce)}, nc={nc}'


_Check = Callable[[DigestServer, Credentials, "str | None"], bool]
_Reason = Callable[[Credentials, "str | None"], str]

#: _precheck's rows before the nonce, in order: (failed?, status, reason).
_PRECHECKS: tuple[tuple[_Check, AuthStatus, _Reason], ...] = (
    (
        lambda server, creds, uri: creds.realm != server.realm,
        AuthStatus.WRONG_REALM,
        lambda creds, uri: f"realm {creds.realm!r}",
    ),
    (
        lambda server, creds, uri: canonical_algorithm(creds.algorithm) not in server.algorithms,
        AuthStatus.UNSUPPORTED_ALGORITHM,
        lambda creds, uri: f"algorithm {creds.algorithm!r}",
    ),
    (
        lambda server, creds, uri: creds.qop is None and not server.allow_rfc2069,
        AuthStatus.QOP_MISSING,
        lambda creds, uri: "response without qop",
    ),
    (
        lambda server, creds, uri: creds.qop is not None and creds.qop not in server.qop_options,
        AuthStatus.MALFORMED,
        lambda creds, uri: f"qop {creds.qop!r} was not offered",
    ),
    (
        lambda server, creds, uri: creds.qop is not None and (creds.nc is None or not creds.cnonce),
        AuthStatus.MALFORMED,
        lambda creds, uri: "qop without nc or cnonce",
    ),
    (
        lambda server, creds, uri: uri is not None and not server._uri_match(creds.uri, uri),
        AuthStatus.URI_MISMATCH,
        lambda creds, uri: f"digest uri {creds.uri!r} is not {uri!r}",
    ),
)


def _checked_algorithm(name: str) -> str:
    algorithm = canonical_algorithm(name)
    if algorithm is None:
        raise ValueError(
            f"unsupported digest algorithm {name!r}; use one of {', '.join(SUPPORTED_ALGORITHMS)}"
        )
    return algorithm
