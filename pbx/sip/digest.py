"""SIP digest authentication values and arithmetic (RFC 7616, RFC 8760, RFC 3261 §22).

This module owns two things:

* the digest arithmetic: HA1, HA2 and the response for MD5 and SHA-256 and their
  "-sess" variants (RFC 7616 §3.4.1-§3.4.3; SHA-256 in SIP is RFC 8760 §2);
* the auth header grammar shared by WWW-Authenticate, Proxy-Authenticate,
  Authorization, Proxy-Authorization (RFC 3261 §25.1, RFC 7235 §2.1) and
  Authentication-Info (RFC 7615 §3, RFC 7616 §3.5): a scheme followed by
  comma-separated ``name=value`` params where the value is a token or a
  quoted-string with backslash escapes.  HTTP allows several challenges in one
  header value; SIP phones send one per header.  Both parse to a list.

A scheme other than Digest (RFC 4475 §3.3.13 regaut01: "NoOneKnowsThisScheme")
parses into a generic `AuthParams`, so the server can answer with a fresh
challenge rather than fail.  Syntax errors raise `ParseError` (status 400).

The server and client machines live in digest_server.py and digest_client.py.
Everything here is sans-IO: no clock, no sockets.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pbx.frozen import quick_constructor
from pbx.sip.errors import ParseError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthParams",
    "AuthenticationInfo",
    "Challenge",
    "Credentials",
    "compute_ha1",
    "compute_response",
    "format_auth",
    "hash_hex",
    "parse_authentication_info",
    "parse_challenges",
    "parse_credentials",
    "quote_param",
    "session_ha1",
]

#: Digest algorithm base name (upper-cased, without "-sess") -> hashlib name.
#: RFC 7616 §3.4.1 and RFC 8760 §2 (SHA-512-256 is not offered by SIP phones today).
_HASHES: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256"}

#: Every algorithm token we can compute, strongest first (RFC 8760 §2.4: SHA-256 before MD5).
SUPPORTED_ALGORITHMS: tuple[str, ...] = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")


# --------------------------------------------------------------------------- arithmetic


@functools.lru_cache(maxsize=32)
def _split_algorithm(algorithm: str) -> tuple[str, bool]:
    """Return (hashlib name, is_sess) for an algorithm token, case-insensitively (remembered
    per spelling: two calls per digest response; bounded against made-up tokens)."""
    name = algorithm.upper()
    sess = name.endswith("-SESS")
    base = name.removesuffix("-SESS")
    try:
        return _HASHES[base], sess
    except KeyError:
        raise ValueError(f"unsupported digest algorithm: {algorithm!r}") from None


def canonical_algorithm(algorithm: str | None) -> str | None:
    """Return the registered spelling ("SHA-256-sess") or None when unsupported."""
    return _CANONICAL.get((algorithm or "MD5").upper())


_CANONICAL = {name.upper(): name for name in SUPPORTED_ALGORITHMS}


def hash_hex(algorithm: str, data: str | bytes) -> str:
    """H(data) of RFC 7616 §3.4: lower-case hex of the algorithm's hash."""
    raw = data.encode() if isinstance(data, str) else data
    constructor = _CONSTRUCTORS.get(algorithm)  # the spellings the server and client use
    if constructor is not None:
        return constructor(raw).hexdigest()
    return hashlib.new(_split_algorithm(algorithm)[0], raw).hexdigest()


#: hashlib's named constructors skip hashlib.new()'s lookup (three hashes per response).
_CONSTRUCTORS = {
    spelling: {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[spelling.removesuffix("-sess")]
    for spelling in SUPPORTED_ALGORITHMS
}


#: The non-sess spellings the server and client use, whose A1 is the stored HA1 as is.
_PLAIN_CONSTRUCTORS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """Return hex H(username:realm:password) (RFC 7616 §3.4.2, A1 for the non-sess case).

    The store keeps this value instead of the password, one per algorithm, so the
    server can verify responses without ever knowing the secret.  "-sess" variants
    depend on nonce/cnonce and so cannot be stored: they are rejected here.
    """
    hash_name, sess = _split_algorithm(algorithm)
    if sess:
        raise ValueError(f"{algorithm!r} HA1 depends on the nonce and is not stored")
    return hashlib.new(hash_name, f"{username}:{realm}:{password}".encode()).hexdigest()


def session_ha1(ha1: str, algorithm: str, nonce: str, cnonce: str) -> str:
    """Turn the stored HA1 into the one the response uses (RFC 7616 §3.4.2).

    For "-sess" algorithms A1 = H(user:realm:pass):nonce:cnonce, which needs only
    the stored HA1; for the others HA1 is used as is.
    """
    if _split_algorithm(algorithm)[1]:
        return hash_hex(algorithm, f"{ha1}:{nonce}:{cnonce}")
    return ha1


def compute_response(
    ha1: str,
    algorithm: str,
    method: str,
    uri: str,
    nonce: str,
    *,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """Return the request-digest from a stored (non-sess) HA1 (RFC 7616 §3.4.1, §3.4.3).

    With qop "auth" or "auth-int" the response is KD(HA1, nonce:nc:cnonce:qop:HA2);
    without qop it is the RFC 2069 form KD(HA1, nonce:HA2).  For "auth-int" A2
    includes H(body) (RFC 7616 §3.4.3).  An empty `method` yields rspauth (§3.5).
    """
    new = _PLAIN_CONSTRUCTORS.get(algorithm)
    if new is None or qop != "auth":
        return _general_response(ha1, algorithm, method, uri, nonce, qop, nc, cnonce, body)
    # The usual case (stored HA1, qop=auth) with the hash constructor called directly: the
    # same two hashes as below, without four Python-level calls per response.
    ha2 = new(f"{method}:{uri}".encode()).hexdigest()
    return new(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()


def _general_response(
    ha1: str,
    algorithm: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
    body: bytes,
) -> str:
    """compute_response for every algorithm spelling and qop (RFC 7616 §3.4.1-§3.4.3)."""
    a1 = session_ha1(ha1, algorithm, nonce, cnonce or "")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + hash_hex(algorithm, body)
    ha2 = hash_hex(algorithm, a2)
    if qop is None:
        return hash_hex(algorithm, f"{a1}:{nonce}:{ha2}")
    return hash_hex(algorithm, f"{a1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


# --------------------------------------------------------------------------- grammar

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: LWS of RFC 3261 §25.1: spaces/tabs, optionally one folded line break.
_LWS = re.compile(r"(?:[ \t]*\r?\n)?[ \t]+")
_NC = re.compile(r"[0-9A-Fa-f]{8}")
_OPT_LWS = r"(?:(?:[ \t]*\r?\n)?[ \t]+)?"
#: The inside of a quoted-string (RFC 3261 §25.1: qdtext or quoted-pair, no CR/LF) as an
#: unrolled loop: runs of plain characters match in one step each, where the alternation
#: `(?:[^"\\]|\\.)*` stepped through a 40-character nonce one branch per character.
_QUOTED_BODY = r'[^"\\\r\n]*(?:\\[^\r\n][^"\\\r\n]*)*'
#: Fast path for one well-formed `name = value` param; anything else takes the
#: character-level path, which also words the error.
_PARAM = re.compile(
    rf"{_OPT_LWS}({_TOKEN.pattern}){_OPT_LWS}={_OPT_LWS}"
    rf'(?:"({_QUOTED_BODY})"|({_TOKEN.pattern})){_OPT_LWS}'
)
_QUOTED_PAIR = re.compile(r"\\(.)")
#: Fast path for a whole Authorization value as phones write it: `scheme SP name=value
#: *("," name=value)` with blanks but no folding, no empty list items, no token68 (see
#: _simple_params); anything else (and every error) takes the scanner, so results and
#: error texts are the scanner's.


def _simple_param(group: str) -> str:
    """`name = value` with blanks only; `group` opens the three groups ("(" or "(?:")."""
    token = _TOKEN.pattern
    return (
        rf"[ \t]*{group}{token})[ \t]*=[ \t]*"
        rf'(?:"{group}{_QUOTED_BODY})"|{group}{token}))[ \t]*'
    )


_SIMPLE_PARAM = _simple_param("(")
#: The scheme and blanks in front of the params.
_SCHEME = re.compile(rf"[ \t]*({_TOKEN.pattern})[ \t]+")
#: The params in one findall: each match is one param with the comma after it (when more
#: text follows) or the end; anything else is taken whole by the last branch, whose match
#: has an empty name. So a result without an empty name tiles the text exactly as
#: `param *("," param)`.
_TILED_PARAMS = re.compile(rf"{_SIMPLE_PARAM}(?:,(?=[\s\S])|\Z)|[\s\S]+")


@dataclass(frozen=True, slots=True)
class AuthParams:
    """One challenge or credentials as written: scheme, params in order, or a token68.

    Names are lower-cased (they are case-insensitive, RFC 7235 §2.1); values are
    unquoted.  Any scheme parses to this; Digest ones are then typed.
    """

    scheme: str
    params: tuple[tuple[str, str], ...] = ()
    token68: str | None = None

    def get(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"


class _Scanner:
    """A cursor over one header value; every method raises ParseError on bad input."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_lws(self) -> None:
        if self.pos < len(self.text) and self.text[self.pos] not in " \t\r\n":
            return
        match = _LWS.match(self.text, self.pos)
        if match:
            self.pos = match.end()

    def at_end(self) -> bool:
        self.skip_lws()
        return self.pos >= len(self.text)

    def peek(self, char: str) -> bool:
        self.skip_lws()
        return self.text.startswith(char, self.pos)

    def token(self, what: str) -> str:
        self.skip_lws()
        match = _TOKEN.match(self.text, self.pos)
        if not match:
            raise ParseError(f"Bad auth header: expected {what} at offset {self.pos}")
        self.pos = match.end()
        return match.group()

    def quoted(self) -> str:
        """quoted-string of RFC 3261 §25.1, quoted-pair unescaped."""
        out: list[str] = []
        pos = self.pos + 1
        text = self.text
        while pos < len(text):
            char = text[pos]
            if char == '"':
                self.pos = pos + 1
                return "".join(out)
            if char == "\\":
                if pos + 1 >= len(text) or text[pos + 1] in "\r\n":
                    break
                char = text[pos + 1]
                pos += 1
            elif char in "\r\n":
                break
            out.append(char)
            pos += 1
        raise ParseError("Bad auth header: unterminated quoted-string")

    def value(self) -> str:
        return self.quoted() if self.peek('"') else self.token("param value")

    def params_starting(self) -> bool:
        """True when a `name=` follows (so the next token is a param, not a scheme)."""
        self.skip_lws()
        match = _TOKEN.match(self.text, self.pos)
        if not match:
            return False
        after = self._after_lws(match.end())
        if not self.text.startswith("=", after):
            return False
        # token68 ends in "=" padding followed by "," or the end (RFC 7235 §2.1).
        value_at = self._after_lws(after + 1)
        return value_at < len(self.text) and self.text[value_at] not in ",="

    def _after_lws(self, pos: int) -> int:
        match = _LWS.match(self.text, pos)
        return match.end() if match else pos


def _next_param(scan: _Scanner) -> tuple[str, str]:
    match = _PARAM.match(scan.text, scan.pos)
    if match:
        scan.pos = match.end()
        quoted, token = match.group(2), match.group(3)
        if quoted is None:
            return match.group(1).lower(), token
        if "\\" in quoted:
            quoted = _QUOTED_PAIR.sub(r"\1", quoted)
        return match.group(1).lower(), quoted
    name = scan.token("param name").lower()
    if not scan.peek("="):
        raise ParseError(f"Bad auth header: param {name!r} without '='")
    scan.pos += 1
    return name, scan.value()


def _parse_params(scan: _Scanner, *, stop_at_scheme: bool) -> tuple[tuple[str, str], ...]:
    """Parse `name=value *(, name=value)`; stop before a new challenge's scheme."""
    params: list[tuple[str, str]] = []
    seen: set[str] = set()
    while True:
        name, value = _next_param(scan)
        if name in seen:
            raise ParseError(f"Bad auth header: duplicate param {name!r}")
        seen.add(name)
        params.append((name, value))
        if scan.at_end():
            return tuple(params)
        if not scan.peek(","):
            raise ParseError(f"Bad auth header: expected ',' at offset {scan.pos}")
        scan.pos += 1
        while scan.peek(","):  # empty list elements are allowed (RFC 7230 §7)
            scan.pos += 1
        if scan.at_end():
            return tuple(params)
        if stop_at_scheme and not scan.params_starting():
            return tuple(params)


def _parse_one(scan: _Scanner, *, many: bool) -> AuthParams:
    scheme = scan.token("auth scheme")
    if scan.at_end():
        return AuthParams(scheme)
    if not scan.params_starting():
        scan.skip_lws()
        match = _TOKEN68.match(scan.text, scan.pos)
        if not match:
            raise ParseError(f"Bad auth header: unexpected text after scheme {scheme!r}")
        scan.pos = match.end()
        result = AuthParams(scheme, (), match.group())
        if not scan.at_end():
            if not (many and scan.peek(",")):
                raise ParseError("Bad auth header: text after token68")
            scan.pos += 1
        return result
    return AuthParams(scheme, _parse_params(scan, stop_at_scheme=many))


def parse_auth_list(value: str) -> list[AuthParams]:
    """Parse a WWW-/Proxy-Authenticate value: one or more challenges (RFC 7235 §4.1)."""
    scan = _Scanner(value)
    if scan.at_end():
        raise ParseError("Bad auth header: empty value")
    found: list[AuthParams] = []
    while not scan.at_end():
        found.append(_parse_one(scan, many=True))
    return found


def parse_auth(value: str) -> AuthParams:
    """Parse an Authorization/Proxy-Authorization value: exactly one credentials."""
    simple = _parse_simple_auth(value)
    return simple if simple is not None else _scan_auth(value)


def _scan_auth(value: str) -> AuthParams:
    """parse_auth with the scanner, for every spelling (the fast path's reference)."""
    scan = _Scanner(value)
    if scan.at_end():
        raise ParseError("Bad auth header: empty value")
    return _parse_one(scan, many=False)


def _simple_params(value: str) -> tuple[str, list[tuple[str, str, str]]] | None:
    """(scheme, [(name, quoted, token), ...]) when `value` is the usual spelling (see
    _TILED_PARAMS); None for the scanner."""
    scheme = _SCHEME.match(value)
    if scheme is None:
        return None
    found = _TILED_PARAMS.findall(value, scheme.end())
    if not found or not found[-1][0]:  # the catch-all branch takes the rest: it comes last
        return None
    return scheme.group(1), found


def _parse_simple_auth(value: str) -> AuthParams | None:
    """The usual spelling in one regex pass (see _simple_params); None for the scanner."""
    simple = _simple_params(value)
    if simple is None:
        return None
    scheme, found = simple
    params = tuple((name.lower(), token or _unquoted(quoted)) for name, quoted, token in found)
    if len({name for name, _ in params}) != len(params):
        return None  # the scanner words the duplicate-param error
    return AuthParams(scheme, params)


def _unquoted(quoted: str) -> str:
    return _QUOTED_PAIR.sub(r"\1", quoted) if "\\" in quoted else quoted


# --------------------------------------------------------------------------- serializing


def quote_param(value: str) -> str:
    """quoted-string with `\\` and `"` escaped (RFC 3261 §25.1 quoted-pair)."""
    if "\r" in value or "\n" in value:
        raise ValueError("auth param values cannot contain CR or LF")
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def format_auth(scheme: str, params: Iterable[tuple[str, str, bool]]) -> str:
    """Serialize `scheme name=value, ...`; each param is (name, value, quoted)."""
    parts = [f"{name}={quote_param(value) if quoted else value}" for name, value, quoted in params]
    return f"{scheme} {', '.join(parts)}" if parts else scheme


def _flag(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _require(auth: AuthParams, names: tuple[str, ...]) -> dict[str, str]:
    """The params as a dict, after checking the mandatory ones are there."""
    fields = dict(auth.params)
    _require_names(fields, names)
    return fields


def _require_names(fields: dict[str, str], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in fields]
    if missing:
        raise ParseError(f"Bad auth header: Digest without {', '.join(missing)}")


#: The params credentials cannot do without (RFC 7616 §3.4), in the order errors name them.
_CREDENTIAL_ORDER = ("username", "realm", "nonce", "uri", "response")
_CREDENTIAL_NAMES = frozenset(_CREDENTIAL_ORDER)


# --------------------------------------------------------------------------- typed values


@dataclass(frozen=True, slots=True)
class Challenge:
    """A Digest challenge (RFC 7616 §3.3; SIP usage RFC 3261 §22.4, RFC 8760 §2.3)."""

    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    stale: bool = False
    domain: str | None = None
    userhash: bool = False

    @classmethod
    def from_params(cls, auth: AuthParams) -> Challenge:
        fields = _require(auth, ("realm", "nonce"))
        qop = fields.get("qop")
        return cls(
            realm=fields.get("realm") or "",
            nonce=fields.get("nonce") or "",
            opaque=fields.get("opaque"),
            algorithm=fields.get("algorithm") or "MD5",
            qop=tuple(q.strip() for q in qop.split(",") if q.strip()) if qop else (),
            stale=_flag(fields.get("stale")),
            domain=fields.get("domain"),
            userhash=_flag(fields.get("userhash")),
        )

    def __str__(self) -> str:
        params: list[tuple[str, str, bool]] = [("realm", self.realm, True)]
        if self.domain is not None:
            params.append(("domain", self.domain, True))
        params.append(("nonce", self.nonce, True))
        if self.opaque is not None:
            params.append(("opaque", self.opaque, True))
        if self.stale:
            params.append(("stale", "true", False))
        params.append(("algorithm", self.algorithm, False))
        if self.qop:
            params.append(("qop", ",".join(self.qop), True))
        if self.userhash:
            params.append(("userhash", "true", False))
        return format_auth("Digest", params)


@dataclass(frozen=True, slots=True)
class Credentials:
    """Digest credentials of an Authorization header (RFC 7616 §3.4, RFC 3261 §22.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    nc: str | None = None
    qop: str | None = None
    opaque: str | None = None
    userhash: bool = False

    @classmethod
    def from_params(cls, auth: AuthParams) -> Credentials:
        return cls.from_fields(dict(auth.params))

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Credentials:
        """Credentials from their params by (lower-case) name; ParseError when a mandatory
        one is missing (RFC 7616 §3.4) or nc is not 8 hex digits."""
        if not fields.keys() >= _CREDENTIAL_NAMES:
            _require_names(fields, _CREDENTIAL_ORDER)
        nc = fields.get("nc")
        if nc is not None and not _NC.fullmatch(nc):
            raise ParseError("Bad auth header: nc must be 8 hex digits")
        return _new_credentials(
            fields["username"],
            fields["realm"],
            fields["nonce"],
            fields["uri"],
            fields["response"],
            fields.get("algorithm") or "MD5",
            fields.get("cnonce"),
            nc,
            fields.get("qop"),
            fields.get("opaque"),
            _flag(fields.get("userhash")),
        )

    def __str__(self) -> str:
        params: list[tuple[str, str, bool]] = [
            ("username", self.username, True),
            ("realm", self.realm, True),
            ("nonce", self.nonce, True),
            ("uri", self.uri, True),
            ("response", self.response, True),
            ("algorithm", self.algorithm, False),
        ]
        if self.cnonce is not None:
            params.append(("cnonce", self.cnonce, True))
        if self.opaque is not None:
            params.append(("opaque", self.opaque, True))
        if self.qop is not None:
            params.append(("qop", self.qop, False))
        if self.nc is not None:
            params.append(("nc", self.nc, False))
        if self.userhash:
            params.append(("userhash", "true", False))
        return format_auth("Digest", params)


_new_credentials = quick_constructor(Credentials)
"""Credentials(...) with every field given positionally, for the parse of each request."""


@dataclass(frozen=True, slots=True)
class AuthenticationInfo:
    """Authentication-Info (RFC 7615 §3, RFC 7616 §3.5): params only, no scheme."""

    nextnonce: str | None = None
    qop: str | None = None
    rspauth: str | None = None
    cnonce: str | None = None
    nc: str | None = None

    def __str__(self) -> str:
        table = (
            ("nextnonce", self.nextnonce, True),
            ("qop", self.qop, False),
            ("rspauth", self.rspauth, True),
            ("cnonce", self.cnonce, True),
            ("nc", self.nc, False),
        )
        return ", ".join(
            f"{name}={quote_param(value) if quoted else value}"
            for name, value, quoted in table
            if value is not None
        )


def parse_challenges(value: str) -> list[Challenge | AuthParams]:
    """Parse a WWW-/Proxy-Authenticate value; non-Digest schemes stay `AuthParams`."""
    return [Challenge.from_params(a) if a.is_digest else a for a in parse_auth_list(value)]


def parse_credentials(value: str) -> Credentials | AuthParams:
    """Parse an Authorization/Proxy-Authorization value (RFC 3261 §22.4, §25.1)."""
    simple = _simple_params(value)
    if simple is not None and simple[0].lower() == "digest":
        # parse_auth's fast path straight into the fields dict: no AuthParams, no pairs
        # tuple built only to become a dict
        found = simple[1]
        fields = {
            name.lower(): token or (quoted if "\\" not in quoted else _unquoted(quoted))
            for name, quoted, token in found
        }
        if len(fields) == len(found):
            return Credentials.from_fields(fields)
    auth = parse_auth(value)  # other schemes, other spellings, and every error's wording
    return Credentials.from_params(auth) if auth.is_digest else auth


def parse_authentication_info(value: str) -> AuthenticationInfo:
    """Parse an Authentication-Info value (RFC 7615 §3: `1#auth-param`)."""
    scan = _Scanner(value)
    if scan.at_end():
        raise ParseError("Bad Authentication-Info: empty value")
    fields = dict(_parse_params(scan, stop_at_scheme=False))
    nc = fields.get("nc")
    if nc is not None and not _NC.fullmatch(nc):
        raise ParseError("Bad Authentication-Info: nc must be 8 hex digits")
    return AuthenticationInfo(
        nextnonce=fields.get("nextnonce"),
        qop=fields.get("qop"),
        rspauth=fields.get("rspauth"),
        cnonce=fields.get("cnonce"),
        nc=nc,
    )
