"""Full validation of a parsed message for a UAS (RFC 3261 8.2, RFC 4475 3.1.2).

parse_message stays lazy so the hot path reads only what it needs; a UAS that wants to
refuse a malformed request up front with a 400 naming the problem calls validate()."""

from __future__ import annotations

import re

from pbx.sip.errors import ParseError
from pbx.sip.headers import Headers, parse_delta
from pbx.sip.message import _TYPED_FIELDS, REQUIRED_HEADERS, SINGLE_HEADERS, Request, Response
from pbx.sip.uri import SipUri

__all__ = ["validate"]


_DATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)
_WARNING = re.compile(r'[0-9]{3} \S+ "(?:[^"\\]|\\.)*"')


def validate(msg: Request | Response) -> None:
    """Parse every header the stack understands and check the rules a UAS enforces before
    acting on a request (RFC 3261 8.1.1 mandatory fields, 8.2.2.3, 20 single-valued
    fields); raises ParseError naming the first problem. parse_message stays lazy."""
    headers = msg.headers
    counts = headers.name_counts()
    for name in REQUIRED_HEADERS:
        if name not in counts:
            raise ParseError(f"Missing {name}")
    for name in SINGLE_HEADERS:
        if counts.get(name, 0) > 1:
            raise ParseError(f"Multiple {name} values")
    cls = type(msg)
    for field, header in _FIELDS_BY_HEADER:
        if header is None or header in counts:  # an absent header reads as None or []
            field.__get__(msg, cls)  # parses (and caches) what was not read yet
    if not counts.keys().isdisjoint(_EXTRA_NAMES):
        _validate_extras(headers)
    if isinstance(msg, Request):
        _validate_request(msg)


_FIELDS_BY_HEADER = tuple((field, getattr(field, "header", None)) for field in _TYPED_FIELDS)
"""Each typed field with the header it is read from (None: a mandatory header's hot reader,
always read). A field of an absent header has nothing to refuse, so validate() skips it."""

_EXTRA_NAMES = frozenset({"Date", "Min-Expires", "Retry-After", "Warning"})


def _validate_extras(headers: Headers) -> None:
    """Headers the stack does not read but a UAS still refuses when malformed."""
    for value in headers.raw_values("Date"):
        if not _DATE.fullmatch(value):
            raise ParseError("Bad Date")
    for name in ("Min-Expires", "Retry-After"):
        for value in headers.raw_values(name):
            parse_delta(value.split(";", 1)[0].split("(", 1)[0], f"Bad {name}")
    for value in headers.getall("Warning"):
        if not _WARNING.fullmatch(value):
            raise ParseError("Bad Warning")


def _validate_request(request: Request) -> None:
    uri = request.uri
    if isinstance(uri, SipUri) and uri.headers:
        # RFC 3261 19.1.1: headers are not allowed in a Request-URI (RFC 4475 escruri)
        raise ParseError("Bad Request-URI")
    if request.cseq.method != request.method:
        raise ParseError("CSeq method does not match")
