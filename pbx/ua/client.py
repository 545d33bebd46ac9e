"""The user agent's client transactions: awaited, with digest retries (RFC 3261 8.1.3, 22.2).

`ClientTransactions.send()` starts one request on the UA's endpoint and
returns a future for its final response (None when Timer B/F fired or the
transport failed: read it as 408/503, RFC 3261 8.1.3.1, 17.1.4).
Provisional responses go to an `on_provisional` callable and the final one
to `on_final` first, synchronously inside the endpoint's event handler, so a
2xx to INVITE is ACKed before anything else runs.

A 401/407 is answered with credentials from the UA's `DigestClient`, at most
`MAX_AUTH_TRIES` times per request: same Call-ID and tags, a new branch, the
next CSeq (the dialog's next one for an in-dialog request, 12.2.1.1), one
Authorization / Proxy-Authorization header. A 2xx to INVITE that arrives
after its transaction ended is ACKed again from the dialog's cache
(13.2.2.4).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbx.sip.dialog import Dialog
from pbx.sip.errors import SipError
from pbx.sip.events import ResponseReceived
from pbx.sip.message import Request, Response
from pbx.sip.transaction import ClientKey

if TYPE_CHECKING:
    from pbx.ua.agent import UserAgent

log = logging.getLogger(__name__)

MAX_AUTH_TRIES = 2
_BRANCH = re.compile(r";\s*branch=[^;,\s]*", re.IGNORECASE)
_AUTH_HEADERS = frozenset({"Authorization", "Proxy-Authorization"})


@dataclass(slots=True)
class _Pending:
    """One client transaction the UA awaits."""

    request: Request
    future: asyncio.Future[Response | None]
    dialog: Dialog | None
    on_provisional: Callable[[Response], None] | None
    on_final: Callable[[Response | None], None] | None
    on_sent: Callable[[Request, ClientKey], None] | None
    tries: int = 0


class ClientTransactions:
    """The requests a UA awaits, keyed by client transaction."""

    def __init__(self, ua: UserAgent) -> None:
        self.ua = ua
        self._pending: dict[ClientKey, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def send(
        self,
        request: Request,
        *,
        dialog: Dialog | None = None,
        on_provisional: Callable[[Response], None] | None = None,
        on_final: Callable[[Response | None], None] | None = None,
        on_sent: Callable[[Request, ClientKey], None] | None = None,
    ) -> asyncio.Future[Response | None]:
        """Start a client transaction now; the future gets the final response or None."""
        loop = asyncio.get_running_loop()
        pending = _Pending(request, loop.create_future(), dialog, on_provisional, on_final, on_sent)
        self.start(pending)
        return pending.future

    def start(self, pending: _Pending) -> None:
        ua = self.ua
        if ua.closed and pending.request.method not in ("BYE", "REGISTER", "CANCEL"):
            pending.future.set_result(None)
            return
        key = ua.sip.send_request(pending.request, ua.next_hop(pending.request))
        self._pending[key] = pending
        if pending.on_sent is not None:
            pending.on_sent(pending.request, key)

    def on_response(self, ev: ResponseReceived) -> None:
        response = ev.response
        pending = self._pending.get(ev.tx) if ev.tx is not None else None
        if pending is None:
            self._stray_response(response)
            return
        if response.status < 200:
            if pending.on_provisional is not None:
                pending.on_provisional(response)
            return
        assert ev.tx is not None
        if response.status in (401, 407) and self._retry_auth(pending, response):
            self._pending.pop(ev.tx, None)
            return
        self.final(ev.tx, response)

    def final(self, tx: ClientKey, response: Response | None) -> None:
        pending = self._pending.pop(tx, None)
        if pending is None:
            return
        if pending.on_final is not None:
            try:
                pending.on_final(response)
            except Exception:
                log.exception("final-response handler failed")
        if not pending.future.done():
            pending.future.set_result(response)

    def _stray_response(self, response: Response) -> None:
        """A 2xx to INVITE retransmitted after its transaction ended: ACK again (13.2.2.4)."""
        if response.cseq.method != "INVITE" or not 200 <= response.status < 300:
            return
        dialog = self.ua.dialogs.find_for_response(response)
        if dialog is not None:
            try:
                self.ua.send_ack(dialog.ack_for(response))
            except SipError:
                pass

    def _retry_auth(self, pending: _Pending, response: Response) -> bool:
        """Resend with credentials (22.2); False when we gave up or cannot answer."""
        if pending.tries >= MAX_AUTH_TRIES:
            return False
        name = "Proxy-Authenticate" if response.status == 407 else "WWW-Authenticate"
        challenges = response.headers.getall(name)
        request = pending.request
        try:
            value = self.ua.digest.authorization(challenges, request.method, str(request.uri),
                                              request.body)  # fmt: skip
        except SipError as exc:
            log.info("cannot answer the %d challenge: %s", response.status, exc)
            return False
        header = "Proxy-Authorization" if response.status == 407 else "Authorization"
        dialog = pending.dialog
        seq = (dialog.local_seq or 0) + 1 if dialog is not None else request.cseq.seq + 1
        pending.request = with_credentials(request, header, value, seq)
        pending.tries += 1
        if dialog is not None:
            dialog.local_seq = seq
            if request.method == "INVITE":
                dialog.invite_seq = seq
        self.start(pending)
        return True


def with_credentials(request: Request, header: str, value: str, seq: int | None = None) -> Request:
    """A copy of `request` for the authenticated retry: new branch, CSeq `seq` (default + 1),
    the credentials header replacing any earlier one (RFC 3261 22.2, 8.1.3.5)."""
    seq = request.cseq.seq + 1 if seq is None else seq
    items: list[tuple[str, str]] = []
    first_via = True
    for name, item in request.headers:
        if name in _AUTH_HEADERS:
            continue
        if name == "Via" and first_via:
            item, first_via = _BRANCH.sub("", item), False
        elif name == "CSeq":
            item = f"{seq} {request.method}"
        items.append((name, item))
    items.append((header, value))
    return Request(request.method, request.uri, items, request.body)
