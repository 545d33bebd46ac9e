"""A first REGISTER, the one without credentials, read from its header lines alone.

Why: every registration starts with a REGISTER the registrar can only challenge (401, RFC
3261 §10.3 step 3, §22.4), so up to half the REGISTERs a registrar sees need nothing but
the five header lines a response copies (§8.2.6.2) and a fresh nonce. The REGISTER lane
(pbx.registrar_lane) reads such a datagram here instead of building a `Request` and its
typed fields, and writes the 401 without building a `Response`.

What is read here must give the answer the lane's parsed path gives, byte for byte but
for the nonce and To tag: each value goes through the parser's own functions (and their
memos: a phone's To, Contact and Request-URI are the same every time), the same checks
decide, and anything else (credentials, a header outside the lane's set, a repeated one,
folding, a body, bytes outside ASCII, a value the parser refuses) returns None, so the
lane parses the datagram and decides as before. The lane's differential test (lane on
against lane off) covers both paths.
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import NamedTuple

from pbx.sip.errors import ParseError
from pbx.sip.headers import Via, parse_call_id, parse_delta, parse_max_forwards, parse_top_via
from pbx.sip.message import (
    REQUIRED_HEADERS,
    WIRE_NAMES,
    Response,
    parse_contact_line,
    parse_cseq,
)
from pbx.sip.transaction import is_rfc3261_branch
from pbx.sip.uri import SipUri, parse_name_addr, parse_uri

__all__ = ["FirstRegister", "first_register", "challenge_bytes"]

QUICK_HEADERS = frozenset(
    {
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Expires",
        "User-Agent", "Content-Length", "Allow", "Supported",
    }
)  # fmt: skip
"""The REGISTER lane's header set (pbx.registrar_lane.LANE_HEADERS) without Authorization:
with credentials the registrar has more to decide than a challenge."""

_COPIED = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})
"""What a 401 copies from the request (§8.2.6.2; no Record-Route outside 101-299)."""

_REQUIRED = frozenset(REQUIRED_HEADERS)  # RFC 3261 8.1.1

_REQUEST_LINE = re.compile(r'REGISTER (sip:[^\s<>"]++) SIP/2\.0')

_STATUS_LINE = Response(401).start_line() + "\r\n"


class FirstRegister(NamedTuple):
    """What a 401 to a REGISTER without credentials is made of."""

    via: Via
    """The top (and only) Via, parsed and not yet stamped."""
    copied: list[tuple[str, str]]
    """(canonical name, value) of the copied header lines, in the request's order."""


def first_register(data: bytes) -> FirstRegister | None:
    """The copied lines of a plain UDP REGISTER without credentials, or None: the lane's
    parsed path takes it (see the module docstring for what qualifies)."""
    end = len(data) - 4
    if data.find(b"\r\n\r\n") != end or not data.isascii():
        return None  # a body, bytes after the blank line, or none at all
    lines = data[:end].decode("ascii").split("\r\n")
    rest = "".join(lines)
    if "\r" in rest or "\n" in rest or len(lines) < 6:
        return None  # a lone CR or LF (the parser's "Bad line end"), or too few lines
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        return None
    try:
        uri = parse_uri(match.group(1))
        if not isinstance(uri, SipUri) or uri.scheme != "sip" or uri.headers:
            return None
        return _read_headers(lines)
    except ParseError:
        return None


def _read_headers(lines: list[str]) -> FirstRegister | None:
    """The header lines, each field checked with the parser's own reader of it."""
    names = WIRE_NAMES
    try:  # as pbx.sip.message reads lines: a name it has not checked yet is not ours
        items = [
            (names[raw], value.strip())
            for raw, _, value in map(str.partition, lines[1:], repeat(":"))
        ]
    except KeyError:
        return None  # an unknown spelling, a folded line or a line with no colon
    index = dict(items)
    if not QUICK_HEADERS.issuperset(index) or not index.keys() >= _REQUIRED:
        return None
    if len(index) != len(items):  # a repeated header: only Contact may be
        contacts = [value for name, value in items if name == "Contact"]
        if len(index) + len(contacts) - 1 != len(items):
            return None
    else:
        contacts = [index["Contact"]] if "Contact" in index else []
    top = index["Via"]
    if "," in top:
        return None  # more than one Via: the lane answers one-Via requests
    via = parse_top_via(top)
    if via.transport.upper() != "UDP" or not is_rfc3261_branch(via.branch):
        return None
    parse_name_addr(index["From"])
    to = parse_name_addr(index["To"])  # an extension's AOR (§10.3 step 5), no tag yet
    if not isinstance(to.uri, SipUri) or not to.uri.user or "tag" in to.params:
        return None
    parse_call_id(index["Call-ID"])
    if parse_cseq(index["CSeq"]).method != "REGISTER":
        return None
    for value in contacts:
        parse_contact_line(value)
    hops = index.get("Max-Forwards")
    if hops is not None and parse_max_forwards(hops) == 0:
        return None  # the full path's 483
    expires = index.get("Expires")
    if expires is not None:
        parse_delta(expires, "Bad Expires")
    if index.get("Content-Length", "0") != "0":
        return None
    return FirstRegister(via, [item for item in items if item[0] in _COPIED])


def challenge_bytes(
    copied: list[tuple[str, str]], via_text: str | None, to_tag: str, challenges: list[str]
) -> bytes:
    """The 401 as `Response.serialize` writes it: the copied lines in the request's order
    (the Via as stamped, or as it came when `via_text` is None; the To with our tag), one
    WWW-Authenticate per challenge."""
    out = [_STATUS_LINE]
    for name, value in copied:
        if name == "Via":
            value = via_text or value
        elif name == "To":
            value = f"{value};tag={to_tag}"
        out.append(f"{name}: {value}\r\n")
    for challenge in challenges:
        out.append(f"WWW-Authenticate: {challenge}\r\n")
    out.append("Content-Length: 0\r\n\r\n")
    return "".join(out).encode()
