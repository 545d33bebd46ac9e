"""Character classes and regular expressions of the SIP ABNF (RFC 3261 25.1).

Kept in one place so uri.py, headers.py and message.py agree on what a
token, a user part or a host is. Every pattern is compiled once at import.
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
