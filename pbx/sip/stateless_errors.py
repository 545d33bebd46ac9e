"""The answer to a request the core cannot parse or validate (RFC 3261 8.2, RFC 4475).

Such a request gets no transaction: its error response is built from the raw header lines
it carried, copying Via, From, To, Call-ID and CSeq as written (8.2.6.2), since their parsed
forms may be what failed. Kept apart from pbx.sip.core because it is text handling, not
transaction state.
"""

from __future__ import annotations

from collections.abc import Callable

from pbx.sip.errors import ParseError
from pbx.sip.message import Headers, Response, canonical_name

ERROR_COPY = frozenset({"Via", "From", "To", "Call-ID", "CSeq"})
"""Headers a stateless error response copies from the request (8.2.6.2)."""


def error_response(
    items: list[tuple[str, str]], exc: ParseError, new_tag: Callable[[], str]
) -> tuple[Response, str] | None:
    """`exc.status exc.reason` copying Via/From/To/Call-ID/CSeq raw, and the text of its top
    Via (where it goes, 18.2.2); None without a Via, as then it cannot be sent anywhere."""
    copied = [(name, value) for name, value in items if name in ERROR_COPY]
    vias = [value for name, value in copied if name == "Via"]
    if not vias:
        return None
    copied = [
        (name, value + f";tag={new_tag()}" if name == "To" and "tag=" not in value else value)
        for name, value in copied
    ]
    return Response(exc.status, exc.reason, Headers(copied)), vias[0].split(",")[0]


def header_lines(lines: list[str]) -> list[tuple[str, str]]:
    """Best-effort (canonical name, value) pairs of a header block that did not parse."""
    items: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and items:
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if colon and name.strip():
            items.append((canonical_name(name), value.strip()))
    return items
