"""Character classes, regular expressions and name tables of SIP (RFC 3261 7.3.3, 21, 25.1).

Kept in one place so uri.py, headers.py and message.py agree on what a
token, a user part or a host is, how header names are spelled and which reason
phrase goes with a status code. Every pattern is compiled once at import.
"""

from __future__ import annotations

import re

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = "A-Za-z0-9\\-.!%*_+`'~"
TOKEN = re.compile(f"[{TOKEN_CHARS}]+")
# A display name without quotes: *(token LWS)
DISPLAY_TOKENS = re.compile(f"[{TOKEN_CHARS}]+(?:[ \\t]+[{TOKEN_CHARS}]+)*")

_UNRESERVED = "A-Za-z0-9\\-_.!~*'()"
_ESCAPED = "%[0-9A-Fa-f]{2}"
_ALNUM_MARK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"
# user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
USER_SAFE = frozenset(_ALNUM_MARK + "&=+$,;?/")
USER = re.compile(f"(?:[{_UNRESERVED}&=+$,;?/]|{_ESCAPED})+")
PASSWORD_SAFE = frozenset(_ALNUM_MARK + "&=+$,")
PASSWORD = re.compile(f"(?:[{_UNRESERVED}&=+$,]|{_ESCAPED})*")
# paramchar = param-unreserved / unreserved / escaped; param-unreserved = [ ] / : & + $
PARAM_SAFE = frozenset(_ALNUM_MARK + "[]/:&+$")
PARAMCHARS = re.compile(f"(?:[{_UNRESERVED}\\[\\]/:&+$]|{_ESCAPED})+")
# hnv-unreserved = [ ] / ? : + $
HEADER_SAFE = frozenset(_ALNUM_MARK + "[]/?:+$")
HNV = re.compile(f"(?:[{_UNRESERVED}\\[\\]/?:+$]|{_ESCAPED})*")
# hostname / IPv4address (lenient: '_' is seen in the wild) / IPv6reference
HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_.])?|\[[0-9A-Fa-f:.]+\]")
PORT = re.compile(r"[0-9]{1,5}")
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# Anything that may not appear inside a URI written on the wire.
URI_FORBIDDEN = re.compile(r"[\s<>\"]")
TEL_NUMBER = re.compile(r"[0-9A-Fa-f*#+().\-]+")
DIGITS = re.compile(r"[0-9]+")

# Compact header names (RFC 3261 7.3.3 and the extensions that define one).
COMPACT_FORMS = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "f": "From", "t": "To", "v": "Via", "s": "Subject", "k": "Supported",
    "c": "Content-Type", "o": "Event", "u": "Allow-Events", "r": "Refer-To",
    "b": "Referred-By", "x": "Session-Expires", "y": "Identity",
}  # fmt: skip

KNOWN_NAMES = (
    "Accept Accept-Encoding Accept-Language Accept-Contact Alert-Info Allow Allow-Events "
    "Authentication-Info Authorization Call-ID Call-Info Contact Content-Disposition "
    "Content-Encoding Content-Language Content-Length Content-Type CSeq Date Diversion "
    "Error-Info Event Expires From History-Info Identity In-Reply-To Max-Forwards "
    "MIME-Version Min-Expires Min-SE Organization P-Asserted-Identity P-Preferred-Identity "
    "Path Priority Privacy Proxy-Authenticate Proxy-Authorization Proxy-Require RAck Reason "
    "Record-Route Refer-To Referred-By Replaces Reply-To Require Retry-After Route RSeq "
    "Server Service-Route Session-Expires SIP-ETag SIP-If-Match Subject Subscription-State "
    "Supported Timestamp To Unsupported User-Agent Via Warning WWW-Authenticate"
).split()
# Default reason phrases: RFC 3261 section 21 plus common extensions.
REASON_PHRASES: dict[int, str] = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief", 428: "Use Identity Header",
    429: "Provide Referrer Identity", 433: "Anonymity Disallowed", 436: "Bad Identity-Info",
    437: "Unsupported Certificate", 438: "Invalid Identity Header",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    494: "Security Agreement Required", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable", 607: "Unwanted",
}  # fmt: skip
