"""Registration of the user agent's contact with its registrar (RFC 3261 10).

`Registration` sends REGISTER for the account's AOR with our Contact and the
wanted expiry, answers a 401/407 through the UA's digest retry, reads the
expiry the registrar granted (the Contact's expires parameter for our
contact, else the Expires header, 10.2.4) and re-registers before it runs
out: at half the granted time for short ones, 10 s before for longer ones
(`refresh_delay`). A 423 Interval Too Brief is answered once more with the
registrar's Min-Expires (10.2.8). `unregister` sends expires=0 for our
contact only, so other devices of the same extension stay registered.

Behind a NAT the registrar sees another address than ours: its 2xx carries
it in the top Via's received/rport (RFC 3261 18.2.1, RFC 3581 4). With the
UA's `nat_contact` on, the first such answer makes us re-register at once
with that public address as Contact, removing the private one, so calls
reach us through the NAT's mapping (what RFC 5626 does properly with flows;
media relies on the far end's symmetric RTP, as DeskPBX's relay latches).

Every change is a `RegistrationChanged` event. One Call-ID for the life of
the UA and rising CSeq numbers let the registrar order refreshes (10.2).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING

from pbx.sip.message import Response
from pbx.ua.events import RegistrationChanged, RegistrationState

if TYPE_CHECKING:
    from pbx.ua.agent import UserAgent

log = logging.getLogger(__name__)


def refresh_delay(granted: int) -> float:
    """Seconds after a successful REGISTER to send the refresh, before `granted` runs out."""
    return max(granted / 2, granted - 10.0) if granted > 0 else 0.0


def granted_expires(response: Response, contact_uri: str, asked: int) -> int:
    """What the registrar granted for our contact (10.2.4); `asked` when it does not say."""
    for contact in response.contacts:
        if not contact.is_star and str(contact.uri) == contact_uri and contact.expires is not None:
            return contact.expires
    return response.expires if response.expires is not None else asked


class Registration:
    """The REGISTER dialogue of one UA; see the module docstring."""

    def __init__(self, ua: UserAgent) -> None:
        self.ua = ua
        self.state = RegistrationState.UNREGISTERED
        self.expires = 0
        """What the registrar granted (seconds), 0 when not registered."""
        self.call_id = f"{secrets.token_hex(10)}@deskpbx-ua"
        self.from_tag = secrets.token_hex(6)
        self.cseq = 0
        self._wanted = 300
        self._refresh: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()

    def _set(self, state: RegistrationState, response: Response | None, expires: int | None) -> \
            RegistrationChanged:  # fmt: skip
        self.state = state
        status = None if response is None else response.status
        reason = "no answer" if response is None else response.reason
        event = RegistrationChanged(state, status, reason, expires)
        self.ua.emit(event)
        return event

    async def register(self, expires: int = 300) -> RegistrationChanged:
        """Register (or refresh) for `expires` seconds; returns the resulting event."""
        self._wanted = expires
        self._cancel_refresh()
        async with self._lock:
            if self.state is not RegistrationState.REGISTERED:
                self._set(RegistrationState.REGISTERING, None, None)
            await self.ua.locate_server()
            response = await self._send(expires)
            if response is not None and response.status == 423:
                minimum = response.headers.get("Min-Expires")
                if minimum and minimum.strip().isdigit():
                    self._wanted = expires = int(minimum)
                    response = await self._send(expires)
            if response is not None and 200 <= response.status < 300 and expires:
                old = self.ua.contact
                if self.ua.learn_public_address(response):
                    response = await self._send(expires, dropped=old)
            if response is None or not 200 <= response.status < 300:
                if response is None or response.status == 503:
                    self.ua.server_failed()  # the retry goes to the next server, if any
                self.expires = 0
                return self._set(RegistrationState.FAILED, response, None)
            self.expires = granted_expires(response, self.ua.contact_uri, expires)
            event = self._set(RegistrationState.REGISTERED, response, self.expires)
        self._arm_refresh()
        return event

    async def unregister(self) -> RegistrationChanged:
        """Remove our contact's binding (expires=0, 10.2.2)."""
        self._cancel_refresh()
        async with self._lock:
            self._set(RegistrationState.UNREGISTERING, None, None)
            response = await self._send(0)
            self.expires = 0
            ok = response is not None and 200 <= response.status < 300
            state = RegistrationState.UNREGISTERED if ok else RegistrationState.FAILED
            return self._set(state, response, 0 if ok else None)

    async def _send(self, expires: int, dropped: str | None = None) -> Response | None:
        """One REGISTER; `dropped` is a contact of ours to remove in the same request."""
        self.cseq += 1
        account = self.ua.account
        contacts = [("Contact", f"{self.ua.contact};expires={expires}")]
        if dropped is not None:
            contacts.append(("Contact", f"{dropped};expires=0"))
        request = self.ua.new_request(
            "REGISTER",
            f"sip:{account.realm_host}",
            to=f"<{account.aor}>",
            call_id=self.call_id,
            from_tag=self.from_tag,
            cseq=self.cseq,
            headers=[*contacts, ("Expires", str(expires))],
        )
        response = await self.ua.transact(request)
        if response is not None:
            self.cseq = max(self.cseq, response.cseq.seq)
        return response

    def _arm_refresh(self) -> None:
        delay = refresh_delay(self.expires)
        if delay <= 0:
            return
        loop = asyncio.get_running_loop()
        self._refresh = loop.call_later(delay, lambda: self.ua.spawn(self._refresh_now()))

    async def _refresh_now(self) -> None:
        self._refresh = None
        event = await self.register(self._wanted)
        if event.state is RegistrationState.FAILED:
            log.info("re-registration failed (%s %s); retrying in 30 s", event.status, event.reason)
            loop = asyncio.get_running_loop()
            self._refresh = loop.call_later(30.0, lambda: self.ua.spawn(self._refresh_now()))

    def _cancel_refresh(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            self._refresh = None

    def close(self) -> None:
        self._cancel_refresh()
