"""DTMF carried in SIP INFO (RFC 6086): reading the digit a phone sends, writing the ones we send.

Two bodies are in the wild and neither has an RFC: `application/dtmf-relay`
(Cisco's, "Signal=5\\r\\nDuration=160\\r\\n", used by Asterisk, Yealink, Grandstream)
and `application/dtmf` (the bare digit, e.g. "5"). Event codes 10/11 stand for
*/# in some phones' dtmf-relay, as in RFC 4733 section 3.2's event table.
Pure functions: the B2BUA passes the digits to the recording feature code and
builds INFO requests for the HTTP API's send_dtmf.
"""

from __future__ import annotations

DTMF_RELAY = "application/dtmf-relay"
DTMF = "application/dtmf"
DIGITS = frozenset("0123456789*#ABCD")
#: RFC 4733 3.2 event numbers some phones put in Signal= instead of the character.
EVENT_DIGITS = {"10": "*", "11": "#", "12": "A", "13": "B", "14": "C", "15": "D"}


def _normal(text: str) -> str | None:
    value = text.strip().upper()
    value = EVENT_DIGITS.get(value, value)
    return value if value in DIGITS else None


def info_digit(content_type: str | None, body: bytes) -> str | None:
    """The digit an INFO carries, or None when it is not DTMF or does not parse."""
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if kind == DTMF:
        return _normal(text)
    if kind != DTMF_RELAY:
        return None
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() == "signal":
            return _normal(value)
    return None


def dtmf_relay_body(digit: str, duration_ms: int) -> bytes:
    """The application/dtmf-relay body for one digit (Signal and Duration in ms)."""
    if _normal(digit) is None:
        raise ValueError(f"{digit!r} is not a DTMF digit (0-9, *, #, A-D)")
    return f"Signal={digit.upper()}\r\nDuration={duration_ms}\r\n".encode("ascii")
