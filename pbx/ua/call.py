"""One call of the user agent: its dialog, SDP session, RTP stream and state (RFC 3261 13-15).

A `Call` is made by `UserAgent.call()` (we are the UAC) or by an incoming
INVITE (we are the UAS; `IncomingCall` is emitted). Its state follows
`pbx.ua.events.CALL_TRANSITIONS` and every change is a `CallStateChanged`.

The owner's verbs are coroutines on the UA's loop: `answer`, `reject`,
`hangup`, `hold`/`resume` (re-INVITE with sendonly / sendrecv, RFC 3264
8.4), `send_dtmf` (RFC 4733 when telephone-event was agreed, else INFO with
application/dtmf-relay), `transfer` (blind REFER, RFC 3515) and
`attended_transfer` (REFER whose Refer-To carries Replaces, RFC 3891 and
RFC 5589 7). `mute` is immediate. The far end's requests in the dialog
(re-INVITE, BYE, INFO, NOTIFY, REFER) arrive through `on_request`, the
answers to our INVITE through `invite_provisional` / `invite_final`.

Incoming calls are answered with a 2xx the UA resends (T1 doubling to T2)
until the ACK comes (13.3.1.4, `AnswerRetransmitter`); after 64*T1 without
ACK the call is ended with BYE.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from pbx.sip.dialog import AnswerRetransmitter, Dialog, RetransmitAction
from pbx.sip.errors import SipError
from pbx.sip.message import Request, Response
from pbx.sip.sdp import NoCommonCodec
from pbx.sip.transaction import TransactionKey
from pbx.ua import transfer
from pbx.ua.audio import AudioPort, Sink, Source
from pbx.ua.events import (
    CallState,
    CallStateChanged,
    DtmfReceived,
    HoldChanged,
    UaError,
    can_move,
)
from pbx.ua.media import RtpStream, StreamQuality
from pbx.ua.session import MediaSession, Negotiated

if TYPE_CHECKING:
    from pbx.ua.agent import UserAgent

__all__ = ["Call", "UaError", "info_digit"]

log = logging.getLogger(__name__)

EARLY = frozenset({CallState.DIALING, CallState.RINGING, CallState.EARLY_MEDIA})
LIVE = frozenset({CallState.CONNECTED, CallState.ON_HOLD})
SDP = "application/sdp"
MAX_REDIRECTS = 3
DTMF_RELAY = "application/dtmf-relay"


class Call:
    """One call; see the module docstring. Create through `UserAgent`, not directly."""

    def __init__(
        self,
        ua: UserAgent,
        *,
        direction: str,
        call_id: str,
        remote_uri: str,
        display_name: str,
        session: MediaSession,
        rtp: RtpStream,
        state: CallState,
    ) -> None:
        self.ua = ua
        self.direction = direction
        """"outgoing" or "incoming"."""
        self.call_id = call_id
        self.remote_uri = remote_uri
        self.display_name = display_name
        self.session = session
        self.rtp = rtp
        self.state = state
        self.dialog: Dialog | None = None
        self.invite: Request | None = None
        """Our current INVITE (UAC) or the far end's (UAS)."""
        self.invite_tx: TransactionKey | None = None
        self.local_hold = False
        self.remote_hold = False
        self.status: int | None = None
        """The SIP status that ended (or is ending) the call."""
        self.reason = ""
        self.created_at = ua.now()
        self.connected_at: float | None = None
        self.ended_at: float | None = None
        self.replaces: Call | None = None
        """UAS: the call an INVITE with Replaces takes over (RFC 3891)."""
        self._answer_timer: asyncio.TimerHandle | None = None
        self._retransmitter: tuple[AnswerRetransmitter, Response] | None = None
        self._changed = asyncio.Event()
        self._redirects = 0
        self._offer_in_answer = False
        """Our last 2xx carried an offer: the ACK brings the answer (RFC 3261 13.2.1)."""

    def __repr__(self) -> str:
        return f"<Call {self.direction} {self.remote_uri} {self.state.value}>"

    # ---- properties the GUI reads ---------------------------------------------------------

    @property
    def audio(self) -> AudioPort:
        return self.rtp.audio

    @property
    def muted(self) -> bool:
        return self.rtp.muted

    @property
    def negotiated(self) -> Negotiated | None:
        return self.session.negotiated

    def quality(self) -> StreamQuality:
        """Packets, loss, jitter, round trip and an estimated MOS of the call's audio."""
        return self.rtp.quality()

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    @property
    def duration(self) -> float:
        """Seconds connected so far (0 before the answer)."""
        if self.connected_at is None:
            return 0.0
        return (self.ended_at or self.ua.now()) - self.connected_at

    def set_source(self, source: Source | None) -> None:
        self.rtp.audio.source = source

    def set_sink(self, sink: Sink | None) -> None:
        self.rtp.audio.sink = sink

    async def wait_for(self, *states: CallState, timeout: float = 10.0) -> CallState:
        """Wait until the call is in one of `states` (or ended); returns the state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.state not in states and self.state is not CallState.ENDED:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"call still {self.state.value}, wanted {states}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue
        return self.state

    # ---- state ----------------------------------------------------------------------

    def move(self, new: CallState, status: int | None = None, reason: str = "") -> bool:
        """Apply a state change allowed by CALL_TRANSITIONS and announce it."""
        old = self.state
        if old is new or not can_move(old, new):
            return False
        self.state = new
        if new is CallState.CONNECTED and self.connected_at is None:
            self.connected_at = self.ua.now()
        self._changed.set()
        self.ua.emit(CallStateChanged(self, old, new, status, reason))
        return True

    def _live_state(self) -> CallState:
        return CallState.ON_HOLD if self.local_hold or self.remote_hold else CallState.CONNECTED

    def _apply_negotiated(self, negotiated: Negotiated) -> None:
        self.rtp.start(negotiated)
        remote = negotiated.held_by_remote
        if remote != self.remote_hold:
            self.remote_hold = remote
            self.ua.emit(HoldChanged(self, self.local_hold, remote))

    def finish(self, status: int | None = None, reason: str = "") -> None:
        """End the call locally: media closed, timers cancelled, dialog forgotten."""
        if self.state is CallState.ENDED:
            return
        self.status = status if self.status is None else self.status
        self.reason = reason or self.reason
        if self._answer_timer is not None:
            self._answer_timer.cancel()
        self.rtp.close()
        self.ended_at = self.ua.now()
        self.move(CallState.ENDED, status, reason)
        self.ua.forget(self)

    # ---- UAC: answers to our INVITE -----------------------------------------------------

    def invite_provisional(self, response: Response) -> None:
        self.ua.dialog_response(self, response)
        if response.body and response.content_type == SDP:
            try:
                self._apply_negotiated(self.session.answer_received(response.body))
                self.move(CallState.EARLY_MEDIA, response.status, response.reason)
                return
            except (NoCommonCodec, SipError) as exc:
                log.info("early SDP of %s unusable: %s", self.call_id, exc)
        if response.status in (180, 181, 182, 183):
            self.move(CallState.RINGING, response.status, response.reason)

    def invite_final(self, response: Response | None) -> None:
        """The final answer to our INVITE (None: no answer at all, treated as 408)."""
        if response is None:
            self.finish(408, "no answer")
            return
        if 300 <= response.status < 400 and self._redirect(response):
            return
        if response.status >= 300:
            self.finish(response.status, response.reason)
            return
        dialog = self.ua.dialog_response(self, response)
        if dialog is None or dialog.redundant:
            return
        self.dialog = dialog
        self.ua.send_ack(dialog.ack_for(response))
        if self.state is CallState.ENDING:  # hung up while the 2xx was on its way (15)
            self.ua.spawn(self._bye())
            return
        try:
            self._apply_negotiated(self.session.answer_received(response.body))
        except (NoCommonCodec, SipError) as exc:
            log.info("answer SDP of %s unusable (%s): hanging up", self.call_id, exc)
            self.ua.spawn(self._bye(488, "no usable SDP answer"))
            return
        self.move(self._live_state(), response.status, response.reason)

    def _redirect(self, response: Response) -> bool:
        """Follow the first SIP Contact of a 3xx, at most MAX_REDIRECTS times (8.1.3.4)."""
        targets = [str(c.uri) for c in response.contacts if not c.is_star]
        targets = [t for t in targets if t.lower().startswith(("sip:", "sips:"))]
        if not targets or self._redirects >= MAX_REDIRECTS or self.state is CallState.ENDING:
            return False
        self._redirects += 1
        self.remote_uri = targets[0]
        self.ua.redirect(self, targets[0])
        return True

    # ---- UAS: answering ---------------------------------------------------------------

    async def answer(self) -> None:
        """Accept an incoming call with 200 OK and our SDP answer (13.3.1.4)."""
        if self.direction != "incoming" or self.state not in EARLY:
            raise UaError(f"cannot answer a {self.direction} call that is {self.state.value}")
        assert self.invite is not None and self.invite_tx is not None
        if self.replaces is None:  # a replacing call takes over instead (RFC 3891 3)
            self.ua.hold_others(self)
        if self.invite.body:
            body = self.session.answer(self.invite.body)
        else:
            body = self.session.offer()  # offer in the 2xx, answer in the ACK (13.2.1)
            self._offer_in_answer = True
        response = self._ok(self.invite, body)
        self.ua.send_response(self.invite_tx, response)
        if self.dialog is not None:
            self.dialog.response_sent(response)
        if self.session.negotiated is not None:
            self._apply_negotiated(self.session.negotiated)
        self._resend_until_acked(response)
        self.move(self._live_state(), 200, "OK")
        if self.replaces is not None:
            replaced, self.replaces = self.replaces, None
            self.ua.spawn(replaced.hangup())

    def _ok(self, request: Request, body: bytes) -> Response:
        assert self.dialog is not None
        headers = [("Contact", self.ua.contact), ("Allow", self.ua.allow)]
        headers += [("Content-Type", SDP)] if body else []
        response = request.make_response(200, to_tag=self.dialog.id.local_tag, headers=headers)
        response.body = body
        return response

    async def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call that is still ringing (486 Busy Here by default)."""
        if self.direction != "incoming" or self.state not in EARLY:
            raise UaError(f"cannot reject a call that is {self.state.value}")
        assert self.invite is not None and self.invite_tx is not None
        tag = self.dialog.id.local_tag if self.dialog is not None else None
        response = self.invite.make_response(status, reason, to_tag=tag)
        self.ua.send_response(self.invite_tx, response)
        self.finish(status, response.reason)

    def _resend_until_acked(self, response: Response) -> None:
        if self.ua.account.transport.upper() != "UDP":
            return
        t = self.ua.timer_config
        self._retransmitter = (AnswerRetransmitter(self.ua.now(), t1=t.t1, t2=t.t2), response)
        self._arm_answer_timer()

    def _arm_answer_timer(self) -> None:
        if self._retransmitter is None:
            return
        retransmitter, response = self._retransmitter
        deadline = retransmitter.next_deadline()
        if deadline is None or self.ended:
            self._retransmitter = None
            return
        self._answer_timer = asyncio.get_running_loop().call_at(deadline, self._answer_due)

    def _answer_due(self) -> None:
        if self._retransmitter is None:
            return
        retransmitter, response = self._retransmitter
        action = retransmitter.on_timer(self.ua.now())
        if action is RetransmitAction.RETRANSMIT:
            self.ua.send_response_again(response)
        elif action is RetransmitAction.GIVE_UP:
            self._retransmitter = None
            self.ua.spawn(self._bye(408, "no ACK"))
            return
        self._arm_answer_timer()

    def cancelled(self) -> None:
        """The caller sent CANCEL before we answered (9.2): 487 to the INVITE."""
        if self.state in EARLY and self.invite is not None and self.invite_tx is not None:
            tag = self.dialog.id.local_tag if self.dialog is not None else None
            self.ua.send_response(self.invite_tx, self.invite.make_response(487, to_tag=tag))
            self.finish(487, "cancelled")

    # ---- hanging up -------------------------------------------------------------------

    async def hangup(self) -> None:
        """End the call whatever its state: CANCEL, a final response, or BYE (9, 15)."""
        if self.state in (CallState.ENDED, CallState.ENDING):
            return
        if self.direction == "incoming" and self.state in EARLY:
            await self.reject(603, "Decline")
        elif self.state in EARLY:
            self.move(CallState.ENDING, reason="cancelled")
            if self.invite_tx is None or not self.ua.cancel(self.invite_tx):
                self.finish(487, "cancelled")
            await self.wait_for(CallState.ENDED, timeout=40.0)
        else:
            await self._bye()

    async def _bye(self, status: int | None = None, reason: str = "local hangup") -> None:
        if self.dialog is None or self.state is CallState.ENDED:
            self.finish(status, reason)
            return
        self.move(CallState.ENDING, status, reason)
        self.status = status
        try:
            request = self.dialog.bye()
        except SipError:
            self.finish(status, reason)
            return
        await self.ua.transact(request, dialog=self.dialog)
        self.finish(status, reason)

    # ---- hold, mute, DTMF -------------------------------------------------------------

    async def hold(self) -> None:
        """Put the far end on hold: re-INVITE with a sendonly offer (RFC 3264 8.4)."""
        await self._set_hold(True)

    async def resume(self) -> None:
        """Take the far end off hold: re-INVITE with a sendrecv offer. With the UA's
        `auto_hold`, the call that was active is put on hold (one active call)."""
        if self.local_hold:
            self.ua.hold_others(self)
        await self._set_hold(False)

    async def _set_hold(self, hold: bool) -> None:
        if self.state not in LIVE or self.dialog is None:
            raise UaError(f"cannot change hold of a call that is {self.state.value}")
        if self.local_hold == hold:
            return
        previous = self.session.hold
        self.session.hold = hold
        try:
            response = await self._reinvite()
            if response is not None and response.status == 491:  # glare: wait, try once more
                await asyncio.sleep(self._glare_delay())
                response = await self._reinvite()
        except UaError:
            self.session.hold = previous
            raise
        if response is None or response.status >= 300:
            self.session.hold = previous
            status = None if response is None else response.status
            raise UaError(f"{'hold' if hold else 'resume'} refused ({status or 'no answer'})",
                          status)  # fmt: skip
        self.local_hold = hold
        self.ua.emit(HoldChanged(self, self.local_hold, self.remote_hold))
        self.move(self._live_state(), response.status, "local hold" if hold else "resumed")

    async def _reinvite(self) -> Response | None:
        if self.dialog is None or self.ended:
            return None
        try:
            request = self.dialog.reinvite(self.session.offer())
        except SipError as exc:
            raise UaError(f"re-INVITE not possible now: {exc}") from exc
        return await self.ua.transact(request, dialog=self.dialog, on_final=self._reinvited)

    def _glare_delay(self) -> float:
        """RFC 3261 14.1: the Call-ID's owner waits 2.1-4 s after a 491, the other 0-2 s."""
        owner = self.direction == "outgoing"
        low, high = (2.1, 4.0) if owner else (0.0, 2.0)
        return low + (high - low) * secrets.randbelow(1000) / 1000

    def _reinvited(self, response: Response | None) -> None:
        """Synchronously on the final answer to our re-INVITE: a 2xx is ACKed and its answer
        applied; no answer, 408 or 481 end the call (RFC 3261 12.2.1.2, 14.1)."""
        dialog = self.dialog
        if dialog is None or self.ended:
            return
        if response is None:
            dialog.invite_pending = False
            self.ua.spawn(self._bye(408, "re-INVITE not answered"))
            return
        dialog.receive_response(response)
        if response.status in (408, 481):
            self.finish(response.status, response.reason)
            return
        if not 200 <= response.status < 300:
            return
        self.ua.send_ack(dialog.ack_for(response))
        try:
            self._apply_negotiated(self.session.answer_received(response.body))
        except (NoCommonCodec, SipError) as exc:
            log.info("re-INVITE answer of %s unusable: %s", self.call_id, exc)

    def mute(self, on: bool = True) -> None:
        """Send silence instead of the source (the RTP clock keeps running)."""
        self.rtp.muted = on

    async def send_dtmf(self, digits: str, *, method: str = "auto") -> str:
        """Send key presses: RFC 4733 events when agreed ("auto"/"rfc4733"), else SIP INFO.

        Returns the method used ("rfc4733" or "info").
        """
        if self.state not in LIVE or self.dialog is None:
            raise UaError(f"cannot send DTMF on a call that is {self.state.value}")
        negotiated = self.session.negotiated
        if method != "info" and negotiated is not None and negotiated.dtmf_payload_type is not None:
            await self.rtp.send_dtmf(digits)
            return "rfc4733"
        for digit in digits:
            body = f"Signal={digit}\r\nDuration=160\r\n".encode()
            request = self.dialog.info(body, DTMF_RELAY)
            response = await self.ua.transact(request, dialog=self.dialog)
            if response is None or response.status >= 300:
                raise UaError(f"INFO for DTMF {digit!r} refused",
                              None if response is None else response.status)  # fmt: skip
        return "info"

    # ---- transfer -------------------------------------------------------------------

    async def transfer(self, target: str) -> int:
        """Blind transfer: REFER the far end to `target` (RFC 3515); returns the REFER's
        final status (202). Progress arrives as TransferProgress events."""
        return await transfer.refer(self, self.ua.target_uri(target))

    async def attended_transfer(self, other: Call) -> int:
        """Attended transfer: REFER the far end to `other`'s far end, replacing `other`'s
        dialog there (RFC 5589 7, RFC 3891 3). Both calls should be on hold or live."""
        return await transfer.refer(self, transfer.replacing_target(other))

    # ---- requests from the far end in our dialog --------------------------------------

    def on_request(self, request: Request, tx: TransactionKey | None) -> None:
        assert self.dialog is not None
        if request.method == "ACK":
            self._on_ack(request)
            return
        error = self.dialog.receive_request(request)
        if error is not None:
            self.ua.reply(tx, error)
            return
        handler = _IN_DIALOG.get(request.method)
        if handler is None:
            self.ua.reply(tx, request.make_response(501, headers=[("Allow", self.ua.allow)]))
            return
        handler(self, request, tx)

    def _on_ack(self, request: Request) -> None:
        if self.dialog is not None:
            self.dialog.receive_request(request)
        if self._retransmitter is not None:
            self._retransmitter[0].ack_received()
            self._retransmitter = None
        if self._answer_timer is not None:
            self._answer_timer.cancel()
        if self._offer_in_answer and request.body and request.content_type == SDP:
            self._offer_in_answer = False
            try:
                self._apply_negotiated(self.session.answer_received(request.body))
            except (NoCommonCodec, SipError) as exc:
                log.info("SDP in the ACK of %s unusable (%s): hanging up", self.call_id, exc)
                self.ua.spawn(self._bye(488, "no usable SDP answer"))
                return
            if self.state in LIVE:
                self.move(self._live_state(), reason="remote hold" if self.remote_hold else "")

    def _on_reinvite(self, request: Request, tx: TransactionKey | None) -> None:
        assert tx is not None
        try:
            body = self.session.answer(request.body) if request.body else self.session.offer()
            self._offer_in_answer = not request.body
        except (NoCommonCodec, SipError):
            self.ua.reply(tx, request.make_response(488))
            return
        response = self._ok(request, body)
        self.ua.send_response(tx, response)
        self._resend_until_acked(response)
        if request.body and self.session.negotiated is not None:
            self._apply_negotiated(self.session.negotiated)
        self.move(self._live_state(), reason="remote hold" if self.remote_hold else "resumed")

    def _on_bye(self, request: Request, tx: TransactionKey | None) -> None:
        self.ua.reply(tx, request.make_response(200))
        self.finish(None, "remote hangup")

    def _on_info(self, request: Request, tx: TransactionKey | None) -> None:
        digit = info_digit(request)
        self.ua.reply(tx, request.make_response(200 if digit is not None else 415))
        if digit is not None:
            self.ua.emit(DtmfReceived(self, digit, "info"))

    def _on_update(self, request: Request, tx: TransactionKey | None) -> None:
        if request.body:
            self._on_reinvite(request, tx)
        else:
            self.ua.reply(tx, request.make_response(200))

    def _on_options(self, request: Request, tx: TransactionKey | None) -> None:
        self.ua.reply(tx, request.make_response(200, headers=[("Allow", self.ua.allow)]))

    def notify_refer(
        self, status: int, reason: str, final: bool
    ) -> asyncio.Future[Response | None] | None:
        """Tell the transferor how our call to the REFER target goes (RFC 3515 2.4.4)."""
        return transfer.notify(self, status, reason, final)


_IN_DIALOG: dict[str, Callable[[Call, Request, TransactionKey | None], None]] = {
    "INVITE": Call._on_reinvite,
    "BYE": Call._on_bye,
    "INFO": Call._on_info,
    "NOTIFY": transfer.on_notify,
    "REFER": transfer.on_refer,
    "UPDATE": Call._on_update,
    "OPTIONS": Call._on_options,
}


def info_digit(request: Request) -> str | None:
    """The key of an INFO: application/dtmf-relay "Signal=5" or application/dtmf "5"."""
    text = request.body.decode("utf-8", "replace").strip()
    kind = (request.content_type or "").lower()
    if kind == "application/dtmf" and text:
        return text[:1]
    if kind != DTMF_RELAY:
        return None
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip().lower() == "signal" and value.strip():
            return value.strip()[:1]
    return None
