"""Typed values of the header fields the stack reads: Via, CSeq, Contact.

RFC 3261 20.42 (Via, with 18.2.1 received and RFC 3581 rport), 20.16 (CSeq),
20.10 (Contact, with `*`, expires and q) and 7.3.1 (comma-separated lists).
Each type has `parse(text)` raising only ParseError and a canonical `__str__`
that parses back to an equal value. From/To/Route values are `NameAddr`
(uri.py). Digest credentials stay raw here; digest.py parses them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pbx.sip import grammar
from pbx.sip.errors import ParseError
from pbx.sip.uri import (
    GENERIC_PARAM,
    PARAM,
    PLAIN_PARAM,
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
        match = _PLAIN_VIA.fullmatch(text)  # the usual spelling, without LWS or quotes
        if match is not None:
            protocol = "SIP/2.0"
            transport, host, port_text, param_text = match.group(1, 2, 3, 4)
            found = PLAIN_PARAM.findall(param_text) if param_text else ()
        else:
            match = _VIA.fullmatch(text)
            if match is None:
                raise ParseError("Bad Via")
            name, version, transport, host, port_text, param_text = match.group(1, 2, 3, 4, 5, 6)
            protocol = f"{name.upper()}/{version}"
            found = PARAM.findall(param_text) if param_text else ()
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise ParseError("Bad Via sent-by")
        return cls(protocol, transport.upper(), host.lower(), port, params_dict(found))

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


@dataclass(frozen=True, slots=True)
class CSeq:
    """Sequence number and method (RFC 3261 20.16); the number stays below 2**31."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        match = _CSEQ.fullmatch(text)
        if match is None:
            raise ParseError("Bad CSeq")
        digits, method = match.groups()
        if len(digits) > 10 or int(digits) > MAX_CSEQ:
            raise ParseError("Bad CSeq")
        return cls(int(digits), method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


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
    """The first Via of one header line, without parsing the ones after it (hot path)."""
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
