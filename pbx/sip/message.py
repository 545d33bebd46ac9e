"""SIP requests and responses: parse, frame, access lazily, serialize, validate.

RFC 3261 7 (message format), 7.3.1 (folding, comma lists), 7.3.3 (compact
forms), 7.5 and 18.3 (framing: Content-Length over streams, trailing octets
over UDP), 8.2.6 (building a response) and RFC 4475 (torture messages).

Theory of operation: `parse_message` does the least work that makes a message
safe to hand on. It checks the start line with one regex, splits the head into
raw (canonical name, value) pairs with one `partition` per line and a dict
lookup of the name as written (folded lines and names never seen before take a
careful path) and frames the body with Content-Length; header values stay raw
strings. Typed accessors (`msg.via`, `msg.cseq`, ...) are `_Typed` descriptors:
they parse a value on first read and cache it in the `Headers` object, whose
mutators drop the cache; a malformed value raises ParseError when read.
`pbx.sip.validate.validate(msg)` reads everything the stack understands, for
a UAS that wants to reject a bad request up front with a 400 naming the
problem; `pbx.sip.framing.StreamParser` frames messages on a stream."""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from itertools import repeat
from operator import countOf, itemgetter
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from pbx.sip import grammar
from pbx.sip.errors import LocalProtocolError, ParseError
from pbx.sip.grammar import COMPACT_FORMS, REASON_PHRASES
from pbx.sip.headers import (
    _INDEX,  # the first_values() cache key
    LIST_HEADERS,
    CSeq,
    Headers,
    Via,
    canonical_name,
    checked_header,
    parse_call_id,
    parse_contacts,
    parse_content_type,
    parse_delta,
    parse_max_forwards,
    parse_top_via,
)
from pbx.sip.uri import Uri, parse_name_addr, parse_uri, tag_of

__all__ = [
    "COMPACT_FORMS", "LIST_HEADERS", "MAX_BODY", "MAX_HEAD", "REASON_PHRASES", "SIP_VERSION",
    "Headers", "Message", "Request", "Response", "canonical_name", "parse_message",
]  # fmt: skip

T = TypeVar("T")

REQUIRED_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")  # RFC 3261 8.1.1
SINGLE_HEADERS = ("From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Type", "Expires")

SIP_VERSION = "SIP/2.0"
MAX_HEAD = 65536  # bytes of start line + headers a stream may hold before the blank line
MAX_BODY = 1 << 20  # largest Content-Length accepted on a stream


def _required(headers: Headers, canon: str) -> str:
    """The first value of a header the caller names canonically; ParseError when absent."""
    value = headers.first_values().get(canon)
    if value is None:
        raise ParseError(f"Missing {canon}")
    return value


def _optional(parse: Callable[[str], T], canon: str) -> Callable[[Headers], T | None]:
    def read(headers: Headers) -> T | None:
        value = headers.first_values().get(canon)
        return None if value is None else parse(value)

    return read


_MISSING = object()
_TOP_VIA_KEY = ("Via", "via")

PARSED_VALUES = 4096
"""Header values each parse cache keeps. SIP repeats its header lines: both REGISTERs of a
registration (and every refresh) carry the phone's Contact, and every message of a
transaction its CSeq; a parsed value is immutable, so a line seen again reuses it (least
recently used first out: an office's phones and calls fit many times over). Name-addrs
(From, To, Route) have pbx.sip.uri's memo."""


def _memo(parse: Callable[[str], T]) -> Callable[[str], T]:
    """`parse` with its results kept per header value (PARSED_VALUES of them); a value
    that does not parse raises every time, as before."""
    return functools.lru_cache(maxsize=PARSED_VALUES)(parse)


_contacts = _memo(lambda value: tuple(parse_contacts(value)))
_cseq = _memo(CSeq.parse)
parse_contact_line = _contacts
"""The Contact values of one header line, as the `contacts` field reads them (memoized)."""
parse_cseq = _cseq
"""CSeq.parse as the `cseq` field reads it (memoized)."""


class _Typed(Generic[T]):
    """A typed header value: parsed from the raw headers on first read, then cached in the
    Headers object under (header, field), so that changing that header drops it and
    changing another keeps it. A descriptor, so each field is one line in the table of
    `_Message` below."""

    __slots__ = ("key", "parse", "header")

    def __init__(self, header: str, parse: Callable[[Headers], T]) -> None:
        self.parse = parse
        self.header = header
        self.key: tuple[str, str] = (header, "")

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = (self.header, name)

    @overload
    def __get__(self, msg: None, owner: type) -> _Typed[T]: ...

    @overload
    def __get__(self, msg: _Message, owner: type) -> T: ...

    def __get__(self, msg: _Message | None, owner: type) -> T | _Typed[T]:
        if msg is None:
            return self
        cache = msg.headers._cache
        value = cache.get(self.key, _MISSING)
        if value is _MISSING:
            value = cache[self.key] = self.parse(msg.headers)
        return value  # type: ignore[no-any-return]


class _Hot(property, Generic[T]):
    """A typed value read from every message (the transaction key, RFC 3261 17.2.3, and
    the dialog's From tag): a property over a closure, since property's __get__ (in C)
    calls the reader directly, a third cheaper than a descriptor whose __get__ is Python.
    Cached like _Typed, under (header, field)."""

    if TYPE_CHECKING:

        @overload
        def __get__(self, msg: None, owner: type | None = None) -> _Hot[T]: ...

        @overload
        def __get__(self, msg: _Message, owner: type | None = None) -> T: ...

        def __get__(self, msg: Any, owner: Any = None) -> Any: ...


def _first_value(header: str, field: str, parse_value: Callable[[str], T]) -> _Hot[T]:
    """parse_value(first value of mandatory `header`), read in one Python frame."""
    key = (header, field)

    def read(msg: _Message) -> T:
        headers = msg.headers
        cache = headers._cache
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            index = cache.get(_INDEX)
            raw = (headers.first_values() if index is None else index).get(header)
            if raw is None:
                raise ParseError(f"Missing {header}")
            value = cache[key] = parse_value(raw)
        return value  # type: ignore[no-any-return]

    return _Hot(read)


def _list(name: str, parse: Callable[[str], T]) -> Callable[[Headers], list[T]]:
    def read(headers: Headers) -> list[T]:
        if name not in headers.name_counts():
            return []
        return [parse(value) for value in headers.getall(name)]

    return read


def _vias(headers: Headers) -> list[Via]:
    """Every Via value; the top one is taken from the `via` field when it was read already
    (it parsed the same text), so a request's Vias are parsed once each."""
    values = headers.getall("Via")
    top = headers._cache.get(_TOP_VIA_KEY)
    if top is None or not values:
        return [Via.parse(value) for value in values]
    return [top, *map(Via.parse, values[1:])]


def _tag_of(canon: str, field: str, headers: Headers) -> str | None:
    """The tag of From or To: from the parsed name-addr when it was read already, else
    with tag_of, which skips parsing the URI."""
    cache = headers._cache
    parsed = cache.get((canon, field))
    if parsed is not None:
        return parsed.params.get("tag")  # type: ignore[no-any-return]
    index = cache.get(_INDEX)
    value = (headers.first_values() if index is None else index).get(canon)
    if value is None:
        raise ParseError(f"Missing {canon}")
    return tag_of(value)


def _tag(header: str, field: str, addr_field: str) -> _Hot[str | None]:
    """The tag of From or To (RFC 3261 19.3), cached under (header, field): the dialog key
    reads the From tag of every message."""
    key = (header, field)

    def read(msg: _Message) -> str | None:
        cache = msg.headers._cache
        value = cache.get(key, _MISSING)
        if value is _MISSING:
            value = cache[key] = _tag_of(header, addr_field, msg.headers)
        return value  # type: ignore[no-any-return]

    return _Hot(read)


class _Message:
    """What requests and responses share: headers, body, typed accessors, serialization."""

    __slots__ = ("headers", "body")
    headers: Headers
    body: bytes
    is_request: bool = False

    # Typed header values (RFC 3261 20): a missing mandatory header or a malformed value
    # raises ParseError when read. call_id, cseq, via and from_tag make the transaction key.
    call_id = _first_value("Call-ID", "call_id", parse_call_id)
    cseq = _first_value("CSeq", "cseq", _cseq)
    via = _first_value("Via", "via", parse_top_via)
    vias = _Typed("Via", lambda h: _vias(h))
    from_ = _Typed("From", lambda h: parse_name_addr(_required(h, "From")))
    to = _Typed("To", lambda h: parse_name_addr(_required(h, "To")))
    from_tag = _tag("From", "from_tag", "from_")
    to_tag = _tag("To", "to_tag", "to")
    contacts = _Typed(
        "Contact", lambda h: [c for v in h.raw_values("Contact") for c in _contacts(v)]
    )
    max_forwards = _Typed("Max-Forwards", _optional(parse_max_forwards, "Max-Forwards"))
    expires = _Typed("Expires", _optional(lambda v: parse_delta(v, "Bad Expires"), "Expires"))
    routes = _Typed("Route", _list("Route", parse_name_addr))
    record_routes = _Typed("Record-Route", _list("Record-Route", parse_name_addr))
    content_type = _Typed("Content-Type", _optional(parse_content_type, "Content-Type"))

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """Canonical bytes: CRLF line ends, Content-Length last and computed (RFC 3261 7.5)."""
        lines = [self.start_line()]
        lines.extend(f"{n}: {v}" for n, v in self.headers._items if n != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view for `deskpbx sip parse`: raw fields plus the transaction key."""
        out = self._start_dict()
        out["headers"] = [[n, _printable(v)] for n, v in self.headers._items]
        try:
            out["body"] = self.body.decode("utf-8")
            out["body_encoding"] = "utf-8"
        except UnicodeDecodeError:
            out["body"] = base64.b64encode(self.body).decode("ascii")
            out["body_encoding"] = "base64"
        parsed: dict[str, Any] = {}
        errors: list[str] = []
        for key, read in _DICT_FIELDS:
            try:
                parsed[key] = read(self)
            except ParseError as exc:
                parsed[key] = None
                errors.append(exc.reason)
        out["parsed"] = parsed
        if errors:
            out["errors"] = errors
        return out

    def _start_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_DICT_FIELDS: tuple[tuple[str, Callable[[_Message], Any]], ...] = (
    ("call_id", lambda m: _printable(m.call_id)),
    ("cseq", lambda m: {"seq": m.cseq.seq, "method": m.cseq.method}),
    ("via_branch", lambda m: m.via.branch),
    ("from_tag", lambda m: m.from_tag),
    ("to_tag", lambda m: m.to_tag),
)


def _as_headers(headers: Headers | Iterable[tuple[str, str]] | None) -> Headers:
    if isinstance(headers, Headers):
        return headers
    return Headers(headers)


class Request(_Message):
    """A SIP request (RFC 3261 7.1); the Request-URI is parsed on first read of `.uri`."""

    __slots__ = ("method", "_uri", "_uri_text")
    is_request = True
    method: str
    _uri: Uri | None
    _uri_text: str

    def __init__(
        self,
        method: str,
        uri: str | Uri,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        if not grammar.TOKEN.fullmatch(method):
            raise LocalProtocolError(f"bad method {method!r}")
        self.method = method
        self.uri = uri
        self.headers = _as_headers(headers)
        self.body = body

    @property
    def uri(self) -> Uri:
        if self._uri is None:
            self._uri = parse_uri(self._uri_text)
        return self._uri

    @uri.setter
    def uri(self, value: str | Uri) -> None:
        text = value if isinstance(value, str) else str(value)
        if not text or grammar.URI_FORBIDDEN.search(text):
            raise LocalProtocolError(f"bad Request-URI {text!r}")
        self._uri, self._uri_text = (None if isinstance(value, str) else value), text

    def start_line(self) -> str:
        return f"{self.method} {self._uri_text} {SIP_VERSION}"

    def _start_dict(self) -> dict[str, Any]:
        return {"type": "request", "method": self.method, "uri": _printable(self._uri_text),
                "version": SIP_VERSION}  # fmt: skip

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._uri_text}>"

    def make_response(
        self,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A response copying Via, From, To, Call-ID, CSeq and, for 101-299, Record-Route
        (RFC 3261 8.2.6.2, 12.1.1); `to_tag` is added when To has none."""
        copied = _COPY_RR if 100 < status < 300 else _COPY
        items: list[tuple[str, str]] = []
        for name, value in self.headers._items:
            if name in copied:
                if name == "To" and to_tag is not None and self.to_tag is None:
                    value = f"{value};tag={to_tag}"
                items.append((name, value))
        items.extend(checked_header(n, v) for n, v in headers)
        return Response(status, reason, Headers._trusted(items))


_COPY = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})
_COPY_RR = _COPY | {"Record-Route"}


class Response(_Message):
    """A SIP response (RFC 3261 7.2)."""

    __slots__ = ("status", "reason")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> None:
        if not 100 <= status <= 999:
            raise LocalProtocolError(f"bad status code {status!r}")
        if reason is not None and ("\r" in reason or "\n" in reason):
            raise LocalProtocolError("CR or LF in a reason phrase")
        self.status = status
        self.reason = REASON_PHRASES.get(status, "") if reason is None else reason
        self.headers = _as_headers(headers)
        self.body = body

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"

    def _start_dict(self) -> dict[str, Any]:
        return {"type": "response", "version": SIP_VERSION, "status": self.status,
                "reason": _printable(self.reason)}  # fmt: skip

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


Message = Request | Response

# What validate() reads, in this order (the first malformed one names the 400).
_TYPED_FIELDS: tuple[_Typed[Any] | _Hot[Any], ...] = tuple(
    _Message.__dict__[name]
    for name in (
        "call_id", "cseq", "vias", "via", "from_", "to", "contacts", "max_forwards", "expires",
        "routes", "record_routes", "content_type",
    )
)  # fmt: skip


# --- parsing and framing (RFC 3261 7, 7.5, 18.3) --------------------------------------------


_REQUEST_LINE = re.compile(  # possessive runs: each ends at a character outside its class
    f'([{grammar.TOKEN_CHARS}]++) ([A-Za-z][A-Za-z0-9+.\\-]*+:[^\\s<>"]++) SIP/2\\.0'
)
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-9][0-9][0-9])(?: (.*))?", re.S)


def _parse_start(line: str, headers: Headers) -> Request | Response:
    """Request-Line or Status-Line (RFC 3261 7.1, 7.2, 25.1): one regex on the hot path."""
    match = _REQUEST_LINE.fullmatch(line)
    if match is not None:
        request = _new(Request)
        request.method, request._uri_text = match.group(1, 2)
        request._uri, request.headers, request.body = None, headers, b""
        return request
    match = _STATUS_LINE.fullmatch(line)
    if match is not None:
        return Response(int(match.group(1)), match.group(2) or "", headers)
    raise _start_line_error(line)


def _start_line_error(line: str) -> ParseError:
    """Name what is wrong with a start line the regexes refused (RFC 4475 3.1.2)."""
    if line.startswith("SIP/"):
        parts = line.split(" ", 2)
        if parts[0] != SIP_VERSION:
            return ParseError("Unsupported SIP Version", 505)
        return ParseError("Bad Status-Code")
    parts = line.split(" ")
    if len(parts) != 3:
        if len(parts) > 3 and all(parts) and parts[-1] == SIP_VERSION:
            return ParseError("Bad Request-URI")  # LWS inside it (lwsruri)
        return ParseError("Bad Request-Line")  # extra SP (lwsstart, trws)
    method, _, version = parts
    if version != SIP_VERSION:
        if version.upper().startswith("SIP/"):
            return ParseError("Unsupported SIP Version", 505)
        return ParseError("Bad Request-Line")
    if not grammar.TOKEN.fullmatch(method):
        return ParseError("Bad Method")
    return ParseError("Bad Request-URI")


def _parse_head(head: bytes, newline: str = "\r\n") -> tuple[Request | Response, int | None]:
    """Start line and raw headers of `head` (without the blank line); the Content-Length."""
    return _parse_lines(head.decode("utf-8", "surrogateescape").split(newline))


def _parse_lines(lines: list[str]) -> tuple[Request | Response, int | None]:
    """Start line and raw headers of a head split into lines; the Content-Length.

    Hot path: one `partition(": ")` per line and a dict lookup of the raw name, whose value
    then rarely needs a copy to strip. A line written "Name:value" makes the count fall
    short and the lines are split at ":" instead. A folded line (RFC 3261 7.3.1), a line
    without a colon or a name not seen before makes that fail too, and `_header_items`
    redoes the lines one by one."""
    rest = "".join(lines)  # one copy in C, then two memchr: cheaper than counting CR and LF
    if "\r" in rest or "\n" in rest:
        raise ParseError("Bad line end")  # a lone CR or LF inside a line
    headers = _new(Headers)  # Headers._trusted, inlined
    start = lines.pop(0)  # the header lines stay: no copy of the list
    match = _REQUEST_LINE.fullmatch(start)
    if match is not None:  # _parse_start's usual case, inlined
        request = _new(Request)
        request.method, request._uri_text = match.group(1, 2)
        request._uri, request.headers, request.body = None, headers, b""
        msg: Request | Response = request
    else:
        msg = _parse_start(start, headers)
    names = _WIRE_NAMES
    breaks = len(lines)
    try:
        items = [
            (names[raw], value.strip())
            for raw, colon, value in map(str.partition, lines, repeat(": "))
            if colon
        ]
        if len(items) != breaks:
            items = [
                (names[raw], value.strip())
                for raw, colon, value in map(str.partition, lines, repeat(":"))
                if colon
            ]
            if len(items) != breaks:
                items = _header_items(lines)
    except KeyError:
        items = _header_items(lines)
    headers._items = items
    # Headers.first_values(), which the typed accessors read: the first value of each name.
    index = dict(items)  # the last value of each name; the same when no name repeats
    if len(index) != len(items):
        index = dict(reversed(items))
    headers._cache = {_INDEX: index}
    if index.get(_CL) == "0" and len(index) == len(items):
        return msg, 0  # the usual empty body, and no name repeats: nothing more to check
    return msg, _content_length(index, items)


def _header_items(lines: list[str]) -> list[tuple[str, str]]:
    """The careful path: unfold continuation lines and check names never seen before.
    `lines` are the header lines, without the start line."""
    items: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not items:
                raise ParseError("Bad header folding")
            name, value = items[-1]
            more = line.strip()
            items[-1] = (name, f"{value} {more}" if value and more else value or more)
            continue
        raw, colon, value = line.partition(":")
        if not colon:
            raise ParseError("Bad header line")
        name = _WIRE_NAMES.get(raw) or _checked_name(raw)
        items.append((name, value.strip()))
    return items


def _checked_name(raw: str) -> str:
    """Canonical name of a header name not seen before, after checking it is a token."""
    if not grammar.TOKEN.fullmatch(raw.rstrip(" \t")):
        raise ParseError("Bad header line")
    canon = canonical_name(raw)
    if len(_WIRE_NAMES) < 4096:
        _WIRE_NAMES[raw] = canon
    return canon


# Header names as written on the wire (already checked to be tokens) -> canonical name.
# Unknown spellings are added as they are seen, up to a bound.
_WIRE_NAMES: dict[str, str] = {
    spelling: canon
    for spelling, canon in (
        [(name, name) for name in grammar.KNOWN_NAMES]
        + [(name.lower(), name) for name in grammar.KNOWN_NAMES]
        + list(COMPACT_FORMS.items())
        + [(k.upper(), v) for k, v in COMPACT_FORMS.items()]
    )
}

WIRE_NAMES: Mapping[str, str] = _WIRE_NAMES
"""Header names as written on the wire -> canonical name, for readers of raw header lines
(pbx.registrar_challenge); a spelling not in it is one the parser has not checked yet."""

_CL = "Content-Length"
_new = object.__new__
_NAME = itemgetter(0)


def _content_length(index: dict[str, str], items: list[tuple[str, str]]) -> int | None:
    """The Content-Length of a parsed head, given its first values and all its items."""
    value = index.get(_CL)
    if value is None:
        return None
    # Count (in C) only when some name repeats; name_counts() stays lazy.
    if len(index) != len(items) and countOf(map(_NAME, items), _CL) > 1:
        # RFC 4475 3.3.14 mcl01: the body cannot be framed reliably, so reject it.
        raise ParseError("Multiple Content-Length values")
    if not value.isdigit() or not value.isascii() or len(value) > 9:
        raise ParseError("Bad Content-Length")
    return int(value)


_CRLF = "\r\n"


def parse_message(data: bytes) -> Request | Response:
    """Parse one UDP datagram (RFC 3261 18.3): octets past Content-Length are ignored, a
    Content-Length larger than what arrived is an error, no Content-Length means the
    rest of the datagram is the body. Leading CRLFs are skipped (RFC 3261 7.5)."""
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")
    # The last blank line is found from the end, past the body only. It is the first one
    # unless the body has a blank line too; then the head taken holds an empty line, which
    # no header line may be, so it fails and the head up to the first one is parsed.
    end = data.rfind(b"\r\n\r\n")
    if end >= 0:
        try:
            msg, length = _parse_lines(data[:end].decode("utf-8", "surrogateescape").split(_CRLF))
        except ParseError:
            first = data.find(b"\r\n\r\n")
            if first == end:
                raise
            msg, length = _parse_head(data[:first])
            end = first
        start = end + 4
    else:
        end = data.find(b"\n\n")  # tolerate bare-LF line ends (RFC 3261 7.5 robustness)
        if end < 0:
            raise ParseError("Incomplete message" if data else "Empty message")
        msg, length = _parse_head(data[:end].replace(b"\r\n", b"\n"), "\n")
        start = end + 2
    if length is None:
        msg.body = data[start:]
    elif start + length > len(data):
        raise ParseError("Bad Content-Length")
    else:
        msg.body = data[start : start + length]
    return msg
