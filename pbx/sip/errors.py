"""The exceptions of the SIP layer.

`ParseError` is the only exception parse functions raise on bad input, so a
transport can turn any parse failure into one SIP response: its `status`
(400 unless said otherwise, RFC 3261 21.4.1) and its `reason`, a reason
phrase naming the problem ("Bad Content-Length"). `LocalProtocolError` means
our own code misused an API and is a bug, never a reply to the peer.
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error raised by pbx.sip."""


class ParseError(SipError):
    """Bad input from the wire: answer with `status` and `reason` (RFC 3261 8.2, 21.4)."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(f"{status} {reason}")
        self.reason = reason
        self.status = status


class LocalProtocolError(SipError):
    """Our own code asked for something the protocol does not allow."""
