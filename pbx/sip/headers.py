"""Header fields: the ordered multi-map and the typed values the stack reads.

RFC 3261 7.3 (header names, compact forms 7.3.3, comma-separated lists 7.3.1),
20.42 (Via, with 18.2.1 received and RFC 3581 rport), 20.16 (CSeq), 20.10
(Contact, with `*`, expires and q), 20.8 Call-ID, 20.22 Max-Forwards, 20.15
Content-Type. `Headers` and `canonical_name` are re-exported by message.py.
Each type has `parse(text)` raising only ParseError and a canonical `__str__`
that parses back to an equal value. From/To/Route values are `NameAddr`
(uri.py). Digest credentials stay raw here; digest.py parses them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from pbx.sip import grammar
from pbx.sip.errors import LocalProtocolError, ParseError
from pbx.sip.grammar import COMPACT_FORMS
from pbx.sip.uri import (
    GENERIC_PARAM,
    PARAM,
    AbsoluteUri,
    NameAddr,
    format_header_params,
    params_dict,
    parse_name_addr,
    scan_quoted,
)

_T = grammar.TOKEN_CHARS
# sent-protocol LWS sent-by *( SEMI via-params ); LWS is allowed around "/" and ":" (25.1).
# One regex validates the whole value, so the hot path runs it once plus one findall.
_VIA = re.compile(
    f"[ \\t]*([{_T}]+)[ \\t]*/[ \\t]*([{_T}]+)[ \\t]*/[ \\t]*([{_T}]+)[ \\t]+"
    f"({grammar.HOST.pattern})(?:[ \\t]*:[ \\t]*([0-9]{{1,5}}))?"
    f"((?:{GENERIC_PARAM})*)[ \\t]*"
)
# What most phones send (RFC 3261 8.1.1.7, RFC 3581): "SIP/2.0", an upper-case transport, a
# lower-case host or IPv4 address, a port, a branch and rport before or after it. Via.parse
# reads it with this regex alone; any other spelling goes to _PLAIN_VIA, then to _VIA.
# Possessive runs and a look-behind for the host's last character (not "-") spare the
# regex engine its backtracking bookkeeping; they match what the plain spelling would.
_COMMON_VIA = re.compile(
    f"SIP/2\\.0/([A-Z]++) ([a-z0-9_](?:[a-z0-9_.\\-]*+(?<=[a-z0-9_.]))?)"
    f"(?::([0-9]{{1,5}}))?(;rport)?;branch=([{_T}]++)(;rport)?"
)
_PLAIN_VIA = re.compile(
    f"SIP/2\\.0/([{_T}]+) ([A-Za-z0-9_](?:[A-Za-z0-9_.\\-]*[A-Za-z0-9_.])?)"
    f"(?::([0-9]{{1,5}}))?((?:;[{_T}]+(?:=[{_T}]+)?)*)"
)
_CSEQ = re.compile(f"\\s*([0-9]+)\\s+([{_T}]+)\\s*")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
MAX_CSEQ = 2**31 - 1  # RFC 3261 8.1.1.5: the sequence number MUST be less than 2**31
MAX_DELTA = 2**32 - 1  # delta-seconds ceiling (RFC 3261 20.19, 20.33)


def split_header_values(value: str) -> list[str]:
    """Split a comma-separated header value (RFC 3261 7.3.1) on commas outside
    quoted strings and angle brackets; surrounding LWS and empty items are dropped."""
    if '"' not in value and "<" not in value:
        return [v for v in (item.strip() for item in value.split(",")) if v]
    items: list[str] = []
    start, i, n, angle = 0, 0, len(value), False
    while i < n:
        ch = value[i]
        if ch == '"' and not angle:
            i = scan_quoted(value, i)
            continue
        if ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == "," and not angle:
            items.append(value[start:i])
            start = i + 1
        i += 1
    if angle:
        raise ParseError("Unterminated <")
    items.append(value[start:])
    return [v for v in (item.strip() for item in items) if v]


def parse_delta(text: str, reason: str) -> int:
    """delta-seconds (RFC 3261 25.1): digits only, at most 2**32-1 (RFC 4475 scalar02)."""
    text = text.strip()
    if not grammar.DIGITS.fullmatch(text) or len(text) > 10 or int(text) > MAX_DELTA:
        raise ParseError(reason)
    return int(text)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 20.42): where responses go back to."""

    protocol: str = "SIP/2.0"
    transport: str = "UDP"
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        match = _COMMON_VIA.fullmatch(text)
        if match is not None:
            return _common_via(*match.groups())
        match = _PLAIN_VIA.fullmatch(text)  # the usual spelling, without LWS or quotes
        if match is not None:
            protocol = "SIP/2.0"
            transport, host, port_text, param_text = match.groups()
            params = _plain_params(param_text) if param_text else {}
        else:
            match = _VIA.fullmatch(text)
            if match is None:
                raise ParseError("Bad Via")
            name, version, transport, host, port_text, param_text = match.group(1, 2, 3, 4, 5, 6)
            protocol = f"{name.upper()}/{version}"
            params = params_dict(PARAM.findall(param_text)) if param_text else {}
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise ParseError("Bad Via sent-by")
        via = _ViaDraft()
        via.protocol, via.transport, via.host = protocol, transport.upper(), host.lower()
        via.port, via.params = port, params
        via.__class__ = cls  # type: ignore[assignment]
        return via  # type: ignore[return-value]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def maddr(self) -> str | None:
        return self.params.get("maddr")

    @property
    def rport(self) -> int | bool | None:
        """RFC 3581: None when absent, True when asked for (no value), else the port."""
        if "rport" not in self.params:
            return None
        value = self.params["rport"]
        if value is None:
            return True
        if not grammar.PORT.fullmatch(value) or int(value) > 65535:
            raise ParseError("Bad Via rport")
        return int(value)

    @property
    def sent_by(self) -> tuple[str, int]:
        """Host and port, the port defaulting per transport (RFC 3261 18.2.2)."""
        if self.port is not None:
            return self.host, self.port
        return self.host, 5061 if self.transport == "TLS" else 5060

    def __str__(self) -> str:
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{self.protocol}/{self.transport} {hostport}{format_header_params(self.params)}"


def _plain_params(text: str) -> dict[str, str | None]:
    """`;name=value;flag` that a regex already checked is `*(";" token ["=" token])`:
    split/partition find exactly what PLAIN_PARAM.findall would, at half the cost, and
    params_dict's rules apply (names lower-cased, "" -> None, the first of a name wins)."""
    found = list(map(str.partition, text[1:].split(";"), repeat("=")))
    params = {name.lower(): value or None for name, _, value in found}
    if len(params) != len(found):
        params = params_dict([(name, value) for name, _, value in found])
    return params


class _ViaDraft:
    """A Via under construction. The parsers fill one by plain attribute stores and then
    give it Via's class: the frozen dataclass __init__ costs four times as much (and the
    slot descriptors' __set__ twice as much) and checks nothing more. The slots are
    Via's, in Via's order, so the two layouts agree and __class__ may be assigned."""

    __slots__ = Via.__slots__  # type: ignore[assignment]
    protocol: str
    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]


def built_via(
    protocol: str, transport: str, host: str, port: int | None, params: dict[str, str | None]
) -> Via:
    """A Via from parts that came out of a parsed Via (stamping received/rport, RFC 3261
    18.2.1), filled like the parsers fill theirs (see _ViaDraft): nothing to check."""
    via = _ViaDraft()
    via.protocol, via.transport, via.host, via.port, via.params = (
        protocol, transport, host, port, params
    )  # fmt: skip
    via.__class__ = Via  # type: ignore[assignment]
    return via  # type: ignore[return-value]


def _common_via(
    transport: str, host: str, port_text: str | None, rport_first: str | None, branch: str,
    rport_last: str | None,
) -> Via:  # fmt: skip
    """The Via that _COMMON_VIA matched: the parameters params_dict would build (the first
    rport wins, in the order written) without a findall."""
    if rport_first:
        params: dict[str, str | None] = {"rport": None, "branch": branch}
    elif rport_last:
        params = {"branch": branch, "rport": None}
    else:
        params = {"branch": branch}
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise ParseError("Bad Via sent-by")
    via = _ViaDraft()
    via.protocol, via.transport, via.host = "SIP/2.0", transport, host
    via.port, via.params = port, params
    via.__class__ = Via  # type: ignore[assignment]
    return via  # type: ignore[return-value]


# Methods a CSeq usually names (RFC 3261 and extensions); CSeq.parse takes a shortcut for
# them and sends anything else through the full grammar.
_COMMON_METHODS = frozenset(
    "INVITE ACK BYE CANCEL REGISTER OPTIONS INFO UPDATE PRACK SUBSCRIBE NOTIFY REFER "
    "MESSAGE PUBLISH".split()
)


@dataclass(frozen=True, slots=True)
class CSeq:
    """Sequence number and method (RFC 3261 20.16); the number stays below 2**31."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        digits, space, method = text.partition(" ")
        if (
            method in _COMMON_METHODS  # a token, so the regex below would accept it
            and digits.isdigit()
            and digits.isascii()
            and len(digits) <= 10
        ):
            seq = int(digits)
            if seq <= MAX_CSEQ:
                cseq = _CSeqDraft()
                cseq.seq, cseq.method = seq, method
                cseq.__class__ = cls  # type: ignore[assignment]
                return cseq  # type: ignore[return-value]
        match = _CSEQ.fullmatch(text)
        if match is None:
            raise ParseError("Bad CSeq")
        digits, method = match.groups()
        if len(digits) > 10 or int(digits) > MAX_CSEQ:
            raise ParseError("Bad CSeq")
        return cls(int(digits), method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


class _CSeqDraft:
    """A CSeq under construction; see _ViaDraft."""

    __slots__ = CSeq.__slots__  # type: ignore[assignment]
    seq: int
    method: str


# --- the header multi-map (RFC 3261 7.3) -------------------------------------------------

_CANONICAL = {name.lower(): name for name in grammar.KNOWN_NAMES} | COMPACT_FORMS
_NAME_CACHE: dict[str, str] = {}
_SPELLING: dict[str, str] = {}  # lower-case unknown name -> the spelling first seen
_MAX_SPELLINGS = 4096

# Header fields whose value is a comma-separated list (RFC 3261 7.3.1, 25.1); getall() splits
# them. Auth headers and Date contain commas of their own and are never split.
LIST_HEADERS = frozenset(
    "Via Contact Route Record-Route Allow Supported Require Proxy-Require Unsupported Accept "
    "Accept-Encoding Accept-Language Allow-Events Path Service-Route In-Reply-To".split()
)
_INDEX = "first-values"  # key of Headers.first_values() in the typed-value cache
_COUNTS = "name-counts"  # key of Headers.name_counts() in the typed-value cache


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name, expanding compact forms (RFC 3261 7.3.3).

    Names SIP defines get their RFC spelling. Any other name (the X- headers a
    business system sets, say) keeps the mixed-case spelling it was first seen
    with, so "X-Sign-ID" reaches the callee and the CDR as the caller wrote it
    (an all-lower or all-upper name is title-cased); other spellings of it map
    to that one, since header names are case-insensitive. Past
    `_MAX_SPELLINGS` distinct names, new ones are title-cased.
    """
    cached = _NAME_CACHE.get(name)
    if cached is not None:
        return cached
    stripped = name.strip()
    lower = stripped.lower()
    canon = _CANONICAL.get(lower) or _SPELLING.get(lower)
    if canon is None:
        titled = "-".join(part.capitalize() for part in lower.split("-"))
        mixed = stripped not in (lower, stripped.upper())  # a deliberate spelling
        canon = stripped if mixed else titled
        if len(_SPELLING) < _MAX_SPELLINGS:
            _SPELLING[lower] = canon
        else:
            canon = titled
    if len(_NAME_CACHE) < 4096:
        _NAME_CACHE[name] = canon
    return canon


def checked_header(name: str, value: str) -> tuple[str, str]:
    """Refuse what would corrupt the wire: a non-token name or CR/LF in a value (header
    injection through, say, a display name taken from a user)."""
    if not grammar.TOKEN.fullmatch(name):
        raise LocalProtocolError(f"bad header name {name!r}")
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"CR or LF in the value of {name}")
    return canonical_name(name), value


class Headers:
    """Ordered multi-map of (canonical name, raw value); typed values cached in `_cache`.

    A typed value is cached under the key (canonical header name, field), so a change to
    one header drops only the values read from it: stamping `received` on the top Via
    (RFC 3261 18.2.1) or adding a header to a response keeps the parsed From, To and
    CSeq. The two indexes (first values, name counts) are dropped on every change."""

    __slots__ = ("_items", "_cache")

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = (
            [] if items is None else [checked_header(n, v) for n, v in items]
        )
        self._cache: dict[Any, Any] = {}  # str and (name, field) tuple keys

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]]) -> Headers:
        headers = cls.__new__(cls)
        headers._items = items
        headers._cache = {}
        return headers

    def first_values(self) -> dict[str, str]:
        """Canonical name -> first value: built in C on first use, kept in the typed-value
        cache (so every change drops it) and used by get() and the typed accessors."""
        index: dict[str, str] | None = self._cache.get(_INDEX)
        if index is None:
            index = self._cache[_INDEX] = dict(reversed(self._items))
        return index

    def name_counts(self) -> dict[str, int]:
        """Canonical name -> number of header lines, built on first use and cached like
        first_values(): `in` and count() become dict lookups instead of scans."""
        counts: dict[str, int] | None = self._cache.get(_COUNTS)
        if counts is None:
            counts = self._cache[_COUNTS] = {}
            for name, _ in self._items:  # a plain loop: Counter() costs 3x for ten names
                counts[name] = counts.get(name, 0) + 1
        return counts

    def _changed(self, canon: str) -> None:
        """Drop the cached values read from header `canon`, and both indexes."""
        cache = self._cache
        if not cache:
            return
        self._drop_parsed(canon)
        cache.pop(_INDEX, None)
        cache.pop(_COUNTS, None)

    def _drop_parsed(self, canon: str) -> None:
        """Drop the typed values read from header `canon` (keys are (canon, field))."""
        cache = self._cache
        stale = [key for key in cache if key.__class__ is tuple and key[0] == canon]
        for key in stale:
            del cache[key]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.first_values().get(canonical_name(name), default)

    def getall(self, name: str) -> list[str]:
        canon = canonical_name(name)
        values = [value for key, value in self._items if key == canon]
        if canon in LIST_HEADERS:
            return [item for value in values for item in split_header_values(value)]
        return values

    def raw_values(self, name: str) -> list[str]:
        """Every header line's value for `name`, never split on commas."""
        canon = canonical_name(name)
        return [value for key, value in self._items if key == canon]

    def count(self, name: str) -> int:
        return self.name_counts().get(canonical_name(name), 0)

    def add(self, name: str, value: str) -> None:
        item = checked_header(name, value)
        self._items.append(item)
        self._changed(item[0])

    def set(self, name: str, value: str) -> None:
        canon, value = checked_header(name, value)
        out: list[tuple[str, str]] = []
        placed = False
        for key, old in self._items:
            if key != canon:
                out.append((key, old))
            elif not placed:
                out.append((key, value))
                placed = True
        if not placed:
            out.append((canon, value))
        self._items = out
        self._changed(canon)

    def replace_first(self, canon: str, value: str) -> None:
        """Give the first `canon` line `value`, keeping any later ones: for a value the stack
        built from a parsed one (a stamped top Via) under a canonical name. Cheaper than
        set(), which checks the name and drops the indexes: here the first-values index
        is updated and the name counts stay true."""
        if "\r" in value or "\n" in value:
            raise LocalProtocolError(f"CR or LF in the value of {canon}")
        items = self._items.copy()  # the list may be shared with a message built from it
        for i, (key, _) in enumerate(items):
            if key == canon:
                items[i] = (canon, value)
                break
        else:
            items.append((canon, value))
            self._items = items
            self._changed(canon)  # a new line: both indexes change
            return
        self._items = items
        self._drop_parsed(canon)
        cache = self._cache
        index = cache.get(_INDEX)
        if index is not None:
            cache[_INDEX] = {**index, canon: value}

    def remove(self, name: str) -> None:
        canon = canonical_name(name)
        self._items = [(key, value) for key, value in self._items if key != canon]
        self._changed(canon)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return canonical_name(name) in self.name_counts()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        return Headers._trusted(list(self._items))


# --- Contact (RFC 3261 20.10) ----------------------------------------------------------------

_STAR_URI = AbsoluteUri("*", "")


@dataclass(frozen=True, slots=True)
class Contact(NameAddr):
    """A Contact value (RFC 3261 20.10); `*` (is_star) only in REGISTER to remove all."""

    is_star: bool = False

    @property
    def expires(self) -> int | None:
        value = self.params.get("expires")
        if value is None:
            return None
        return parse_delta(value, "Bad Contact expires")

    @property
    def q(self) -> float | None:
        value = self.params.get("q")
        if value is None:
            return None
        if not _QVALUE.fullmatch(value):
            raise ParseError("Bad Contact q")
        return float(value)

    def __str__(self) -> str:
        if self.is_star:
            return "*"
        return NameAddr.__str__(self)


STAR = Contact(None, _STAR_URI, {}, True)


def parse_contacts(value: str) -> list[Contact]:
    """All Contact values of one header line; "*" alone gives [STAR]."""
    if value.strip() == "*":
        return [STAR]
    contacts = []
    for item in split_header_values(value):
        if item == "*":
            raise ParseError("Bad Contact")
        addr = parse_name_addr(item)
        contacts.append(Contact(addr.display, addr.uri, addr.params))
    return contacts


def parse_call_id(value: str) -> str:
    """Call-ID = word ["@" word] (RFC 3261 20.8, 25.1): any visible characters, no LWS."""
    if not value or " " in value or "\t" in value:
        raise ParseError("Bad Call-ID")
    return value


def parse_top_via(value: str) -> Via:
    """The first Via of one header line, without parsing the ones after it (hot path).
    The common spelling is tried first, here: it has no comma, so it is the top Via."""
    match = _COMMON_VIA.fullmatch(value)
    if match is not None:
        return _common_via(*match.groups())
    if "," in value:
        items = split_header_values(value)
        if not items:
            raise ParseError("Bad Via")
        value = items[0]
    return Via.parse(value)


def parse_max_forwards(value: str) -> int:
    """RFC 3261 20.22: an integer 0-255 (RFC 4475 scalar02 sends 300)."""
    value = value.strip()
    if not grammar.DIGITS.fullmatch(value) or len(value) > 5 or int(value) > 255:
        raise ParseError("Bad Max-Forwards")
    return int(value)


_CONTENT_TYPE = re.compile(f"[ \\t]*([{_T}]+)[ \\t]*/[ \\t]*([{_T}]+)[ \\t]*(?:;.*)?", re.S)


def parse_content_type(value: str) -> str:
    """The media type of a Content-Type value, lower-cased, without parameters (20.15)."""
    match = _CONTENT_TYPE.fullmatch(value)
    if match is None:
        raise ParseError("Bad Content-Type")
    return f"{match.group(1)}/{match.group(2)}".lower()
