"""What the SIP core tells its transaction user (TU): frozen events, named in the past tense.

`SipCore.pop_events()` returns these in the order they happened. The TU (the
dialog layer, registrar, B2BUA) reacts to them and answers through the core's
`send_response` / `send_request` / `send_stateless`.

Keys: `tx` is the transaction the message belongs to (a `ClientKey` for
responses, a `ServerKey` / `LegacyServerKey` for requests), or None when the
message matched no transaction and is the TU's own business: an ACK for a 2xx
(RFC 3261 13.3.1.4, 17.2.3) or a response whose client transaction is gone,
such as a 2xx retransmitted after the INVITE transaction ended (13.2.2.4).
"""

from __future__ import annotations

from dataclasses import dataclass

from pbx.sip.message import Request, Response
from pbx.sip.timers import TimerName
from pbx.sip.transaction import ClientKey, TransactionKey


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request (or an ACK the TU must see), from `source` over `transport`."""

    request: Request
    tx: TransactionKey | None
    source: tuple[str, int]
    transport: str


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for client transaction `tx` (None: no transaction matched, 17.1.3)."""

    response: Response
    tx: ClientKey | None
    source: tuple[str, int]
    transport: str


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B or F (no final answer: act as on a 408, 8.1.3.1), H (no ACK, 13.3.1.4)
    or the cancel guard (no answer to a cancelled INVITE, 9.1) fired."""

    tx: TransactionKey
    method: str
    timer: TimerName


@dataclass(frozen=True, slots=True)
class TransportErrorOccurred:
    """Sending for transaction `tx` failed (17.1.4, 17.2.4: act as on a 503)."""

    tx: TransactionKey
    method: str


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """A datagram or stream message that could not be used (RFC 3261 8.2, 16.3, 18.1.2).

    `replied` says whether a `status reason` response was queued to the sender.
    """

    source: tuple[str, int]
    transport: str
    status: int
    reason: str
    replied: bool


Event = (
    RequestReceived
    | ResponseReceived
    | TransactionTimedOut
    | TransportErrorOccurred
    | MessageRejected
)
