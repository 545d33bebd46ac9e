"""SIP, SIPS and tel URIs, and the name-addr / addr-spec forms that carry them.

RFC 3261 19.1 (SIP URI syntax, escaping, 19.1.4 comparison), 20.10 (name-addr
versus addr-spec: parameters after a bare addr-spec belong to the header) and
RFC 3966 (tel). User parts, parameter and header values are stored unescaped
and re-escaped by `__str__`, so two spellings of one URI compare and print the
same (RFC 4475 3.1.1.3 esc01). Any other scheme is kept as an `AbsoluteUri`
(RFC 4475 3.3.2 novelsc) so the application, not the parser, decides.

Parsed values are immutable (frozen dataclasses whose dicts nobody writes to), so
`parse_uri` and `parse_name_addr` remember what they parsed by its text: a phone's
re-REGISTERs and a dialog's requests repeat the same From, To, Contact and
Request-URI, and parsing them again would build equal objects. Malformed text is
never remembered (it raises every time), and each memo is bounded.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pbx.sip import grammar
from pbx.sip.errors import ParseError

_HEX = "0123456789ABCDEF"
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


def unescape(text: str) -> str:
    """Decode %XX escapes (RFC 3261 19.1.2); bytes that are not UTF-8 survive as surrogates."""
    if "%" not in text:
        return text
    parts = text.split("%")
    out = bytearray(parts[0].encode("utf-8", "surrogateescape"))
    for part in parts[1:]:
        if len(part) < 2 or part[0] not in _HEXDIGITS or part[1] not in _HEXDIGITS:
            raise ParseError("Bad URI escape")
        out.append(int(part[:2], 16))
        out += part[2:].encode("utf-8", "surrogateescape")
    return out.decode("utf-8", "surrogateescape")


def escape(text: str, safe: frozenset[str]) -> str:
    """Escape every character outside `safe` as %XX of its UTF-8 octets."""
    if safe.issuperset(text):  # the usual case, decided in C (str(uri) on every request)
        return text
    out = []
    for ch in text:
        if ch in safe:
            out.append(ch)
        else:
            for octet in ch.encode("utf-8", "surrogateescape"):
                out.append("%" + _HEX[octet >> 4] + _HEX[octet & 15])
    return "".join(out)


def _uri_params(text: str, reason: str) -> dict[str, str | None]:
    """`;name=value;flag` after a URI's host (or tel number): names lower-cased, unescaped."""
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not grammar.PARAMCHARS.fullmatch(name) or (
            eq and not grammar.PARAMCHARS.fullmatch(value)
        ):
            raise ParseError(reason)
        params.setdefault(unescape(name).lower(), unescape(value) if eq else None)
    return params


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(
        f";{escape(k, grammar.PARAM_SAFE)}"
        + ("" if v is None else "=" + escape(v, grammar.PARAM_SAFE))
        for k, v in params.items()
    )


@dataclass(frozen=True, slots=True, eq=False)
class SipUri:
    """A sip: or sips: URI (RFC 3261 19.1.1); compare with == for 19.1.4 equivalence.

    Fields in the order of the API contract: SipUri("sip", "alice", None, "example.com").
    """

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def replace(self, **changes: Any) -> SipUri:
        return dataclasses.replace(self, **changes)

    @property
    def transport(self) -> str | None:
        value = self.params.get("transport")
        return value.upper() if value else None

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(escape(self.user, grammar.USER_SAFE))
            if self.password is not None:
                out.append(":" + escape(self.password, grammar.PASSWORD_SAFE))
            out.append("@")
        out.append(self.host_port)
        if self.params:
            out.append(_format_params(self.params))
        if self.headers:
            out.append(
                "?"
                + "&".join(
                    f"{escape(k, grammar.HEADER_SAFE)}={escape(v, grammar.HEADER_SAFE)}"
                    for k, v in self.headers.items()
                )
            )
        return "".join(out)

    def __repr__(self) -> str:
        return f"SipUri({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        """RFC 3261 19.1.4: user and password case-sensitive, host case-insensitive,
        a port or one of user/ttl/method/maddr/transport present on one side only
        differs, other parameters only compare when present on both sides, and
        headers must all match."""
        if not isinstance(other, SipUri):
            return NotImplemented
        if (self.scheme, self.user, self.password, self.host.lower(), self.port) != (
            other.scheme,
            other.user,
            other.password,
            other.host.lower(),
            other.port,
        ):
            return False
        mine = {k: (v.lower() if v else v) for k, v in self.params.items()}
        theirs = {k: (v.lower() if v else v) for k, v in other.params.items()}
        for name in mine.keys() | theirs.keys():
            if name in mine and name in theirs:
                if mine[name] != theirs[name]:
                    return False
            elif name in _MUST_MATCH_PARAMS:
                return False
        mine_h = {k.lower(): v for k, v in self.headers.items()}
        theirs_h = {k.lower(): v for k, v in other.headers.items()}
        return mine_h == theirs_h

    def __hash__(self) -> int:
        return hash((self.scheme, self.user, self.host.lower(), self.port))


_MUST_MATCH_PARAMS = frozenset({"user", "ttl", "method", "maddr", "transport"})


@dataclass(frozen=True, slots=True)
class TelUri:
    """A tel: URI (RFC 3966): a global (+...) or local number and parameters."""

    number: str
    params: dict[str, str | None] = field(default_factory=dict)

    def __str__(self) -> str:
        return "tel:" + self.number + _format_params(self.params)


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of any other scheme (http:, soap.beep:, ...), kept verbatim."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


MEMO_SIZE = 4096
"""Texts each parse memo holds before it starts over (a flood of distinct URIs cannot
grow it)."""
_URI_MEMO: dict[str, Uri] = {}
_NAME_ADDR_MEMO: dict[str, NameAddr] = {}


def parse_uri(text: str) -> Uri:
    """Parse one URI written without surrounding LWS or angle brackets."""
    uri = _URI_MEMO.get(text)
    if uri is None:
        uri = _parse_uri(text)
        if len(_URI_MEMO) >= MEMO_SIZE:
            _URI_MEMO.clear()
        _URI_MEMO[text] = uri
    return uri


def _parse_uri(text: str) -> Uri:
    scheme, colon, rest = text.partition(":")
    if not colon or not grammar.SCHEME.fullmatch(scheme):
        raise ParseError("Bad URI scheme")
    if not rest or grammar.URI_FORBIDDEN.search(rest):
        raise ParseError("Bad URI")
    lower = scheme.lower()
    if lower in ("sip", "sips"):
        return _parse_sip(lower, rest)
    if lower == "tel":
        return _parse_tel(rest)
    return AbsoluteUri(lower, rest)


def _parse_sip(scheme: str, rest: str) -> SipUri:
    at = rest.rfind("@")
    user = password = None
    if at >= 0:
        user, password = _parse_userinfo(rest[:at])
        rest = rest[at + 1 :]
    headers: dict[str, str] = {}
    rest, qmark, header_text = rest.partition("?")
    if qmark:
        headers = _parse_uri_headers(header_text)
    hostport, semi, param_text = rest.partition(";")
    host, port = parse_hostport(hostport, "Bad URI host")
    params = _uri_params(param_text, "Bad URI parameter") if semi else {}
    return SipUri(scheme, user, password, host, port, params, headers)


def _parse_userinfo(text: str) -> tuple[str, str | None]:
    user, colon, password = text.partition(":")
    if not grammar.USER.fullmatch(user) or (colon and not grammar.PASSWORD.fullmatch(password)):
        raise ParseError("Bad URI user")
    return unescape(user), (unescape(password) if colon else None)


def parse_hostport(text: str, reason: str) -> tuple[str, int | None]:
    """`host[:port]` with IPv6 references in brackets; host lower-cased (19.1.4)."""
    if text.startswith("["):
        end = text.find("]") + 1
        host, port_text = text[:end], text[end:]
        if port_text and not port_text.startswith(":"):
            raise ParseError(reason)
        port_text = port_text[1:]
        has_port = bool(text[end:])
    else:
        host, colon, port_text = text.partition(":")
        has_port = bool(colon)
    if not grammar.HOST.fullmatch(host):
        raise ParseError(reason)
    if not has_port:
        return host.lower(), None
    if not grammar.PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise ParseError(reason)
    return host.lower(), int(port_text)


def _parse_uri_headers(text: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not eq or not grammar.HNV.fullmatch(name) or not name:
            raise ParseError("Bad URI header")
        if not grammar.HNV.fullmatch(value):
            raise ParseError("Bad URI header")
        headers[unescape(name)] = unescape(value)
    return headers


def _parse_tel(rest: str) -> TelUri:
    number, semi, param_text = rest.partition(";")
    if not grammar.TEL_NUMBER.fullmatch(number):
        raise ParseError("Bad tel URI")
    return TelUri(number, _uri_params(param_text, "Bad tel URI") if semi else {})


# --- name-addr / addr-spec (RFC 3261 20.10, 25.1) --------------------------------------------


@dataclass(frozen=True, slots=True)
class NameAddr:
    """`"Display" <uri>;params` as in From, To, Contact, Route (RFC 3261 20.10)."""

    display: str | None
    uri: Uri
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        return dataclasses.replace(self, params={**self.params, "tag": tag})

    def __str__(self) -> str:
        out = f"<{self.uri}>"
        if self.display is not None:
            quoted = self.display.replace("\\", "\\\\").replace('"', '\\"')
            out = f'"{quoted}" {out}'
        return out + format_header_params(self.params)


def format_header_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


_QUOTED = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def scan_quoted(text: str, start: int) -> int:
    """Index just past the quoted-string opening at text[start] (RFC 3261 25.1 quoted-pair)."""
    match = _QUOTED.match(text, start)
    if match is None:
        raise ParseError("Unterminated quoted string")
    return match.end()


def unquote(text: str) -> str:
    """The content of a quoted-string, with quoted-pairs resolved."""
    body = text[1:-1]
    if "\\" not in body:
        return body
    out = []
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            i += 1
        out.append(body[i])
        i += 1
    return "".join(out)


_T = grammar.TOKEN_CHARS
# generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string (25.1)
# gen-value = token / host / quoted-string; a bare IPv6address is accepted too because
# Via received and maddr carry one unbracketed (RFC 3261 20.42, RFC 5118 4.5).
GENERIC_PARAM = (
    f"[ \\t]*;[ \\t]*([{_T}]+)"
    f"(?:[ \\t]*=[ \\t]*([0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?=[ \\t]*(?:;|$))"
    f'|[{_T}]+|\\[[0-9A-Fa-f:.]+\\]|"[^"\\\\]*(?:\\\\.[^"\\\\]*)*"))?'
)
_PARAMS_FULL = re.compile(f"(?:{GENERIC_PARAM})*[ \\t]*")
PARAM = re.compile(GENERIC_PARAM)


def parse_header_params(text: str) -> dict[str, str | None]:
    """`;name = value ; flag` after a header value: generic-param (RFC 3261 25.1).

    Names are lower-cased; values are kept as written (quoted strings keep their quotes)
    so they print back unchanged. Empty parameters (`;;`) are rejected (RFC 4475 badinv01).
    """
    if not text:
        return {}
    if _PARAMS_FULL.fullmatch(text) is None:
        raise ParseError("Bad header parameter")
    return params_dict(PARAM.findall(text))


def params_dict(found: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    """(name, value) pairs from a findall as a dict: names lower-cased, "" -> None, and the
    first of repeated names wins (the comprehension's last-wins is redone only then)."""
    params = {name.lower(): value or None for name, value in found}
    if len(params) != len(found):
        params = {}
        for name, value in found:
            params.setdefault(name.lower(), value or None)
    return params


_PLAIN_PARAMS = f"((?:;[{_T}]+(?:=[{_T}]+)?)*)"
PLAIN_PARAM = re.compile(f";([{_T}]+)(?:=([{_T}]+))?")
_PLAIN_ADDRESS = re.compile(
    f'(?:(?:"[^"\\\\]*" ?|[^"<>;]*)<[^<>"\\s]*>|[^"<>;\\s]+){_PLAIN_PARAMS}'
)


# The usual From/To spelling with the tag first among plain parameters: its tag is group 1.
# Every run is possessive: each is followed by a character outside its class, so the
# matches are the same and the engine keeps no backtracking state.
_PLAIN_TAGGED = re.compile(
    f'(?:(?:"[^"\\\\]*+" ?|[^"<>;]*+)<[^<>"\\s]*+>|[^"<>;\\s]++);tag=([{_T}]++)'
    f"(?:;[{_T}]++(?:=[{_T}]++)?)*+"
)


def tag_of(text: str) -> str | None:
    """`params_of(text).get("tag")` (RFC 3261 19.3), for the transaction and dialog keys:
    one regex when the tag is the first of plain parameters after a plain address, which
    is what _PLAIN_ADDRESS and params_dict would find too; anything else goes the long way."""
    match = _PLAIN_TAGGED.fullmatch(text)
    if match is not None:
        return match.group(1)
    return params_of(text).get("tag")


def params_of(text: str) -> dict[str, str | None]:
    """The header parameters of a name-addr or addr-spec value, without parsing its URI:
    the hot path for From/To tags (RFC 3261 20.10, 19.3)."""
    match = _PLAIN_ADDRESS.fullmatch(text)  # the usual spellings: one regex, one findall
    if match is not None:
        return params_dict(PLAIN_PARAM.findall(match.group(1)))
    s = text.strip()
    lt = s.find("<")
    semi = s.find(";")
    if lt < 0 or (s[:1] != '"' and 0 <= semi < lt):
        return parse_header_params(s[semi:]) if semi >= 0 else {}
    if s[0] == '"':
        lt = s.find("<", scan_quoted(s, 0))
    gt = s.find(">", lt) if lt >= 0 else -1
    if gt < 0:
        raise ParseError("Unterminated <")
    return parse_header_params(s[gt + 1 :])


def parse_name_addr(text: str) -> NameAddr:
    """Parse a name-addr (`"A" <uri>;p`) or addr-spec (`uri;p`) with header params."""
    addr = _NAME_ADDR_MEMO.get(text)
    if addr is None:
        addr = _tagged(text) or _parse_name_addr(text)
        if len(_NAME_ADDR_MEMO) >= MEMO_SIZE:
            _NAME_ADDR_MEMO.clear()
        _NAME_ADDR_MEMO[text] = addr
    return addr


def _tagged(text: str) -> NameAddr | None:
    """A From or To with a tag is new text in every call (RFC 3261 19.3), while the address
    in front of `;tag=` is the same for each call a phone makes or takes: when the tag
    is the last parameter, written plainly, the address is parsed (or found in the memo)
    on its own and the tag added, which is what parsing the whole text gives. None: the
    whole text is to be parsed (it also words any error)."""
    head, mark, tag = text.rpartition(";tag=")
    if not mark or not _TAG_VALUE.fullmatch(tag):
        return None
    try:
        base = parse_name_addr(head)
    except ParseError:
        return None
    if "tag" in base.params:
        return None
    return NameAddr(base.display, base.uri, {**base.params, "tag": tag})


_TAG_VALUE = re.compile(f"[{_T}]+")


def _parse_name_addr(text: str) -> NameAddr:
    s = text.strip()
    if not s:
        raise ParseError("Empty address")
    display: str | None = None
    if s[0] == '"':
        end = scan_quoted(s, 0)
        display = unquote(s[:end])
        s = s[end:].lstrip()
        if not s.startswith("<"):
            raise ParseError("Bad name-addr")
    elif s[0] != "<":
        lt = s.find("<")
        words = s[:lt].strip()
        if lt >= 0 and grammar.DISPLAY_TOKENS.fullmatch(words):
            display = words
            s = s[lt:]
        elif lt >= 0 and ":" not in words:
            raise ParseError("Bad display name")  # RFC 4475 baddn: "Bell, Alexander <...>"
    if s[0] == "<":
        gt = s.find(">")
        if gt < 0:
            raise ParseError("Unterminated <")
        inner = s[1:gt]
        if inner != inner.strip():
            raise ParseError("Bad addr-spec")  # no LWS inside <> (RFC 4475 badaspec)
        uri = parse_uri(inner)
        return NameAddr(display, uri, parse_header_params(s[gt + 1 :]))
    uri_text, semi, rest = s.partition(";")
    if "?" in uri_text or "," in uri_text:
        raise ParseError("Bad addr-spec")
    uri = parse_uri(uri_text.rstrip())
    return NameAddr(None, uri, parse_header_params(semi + rest))
