"""In-dialog requests of a call: BYE, OPTIONS, ACK, and those passed to the other leg.

A request inside a call's dialog ends it (BYE: the other leg gets BYE, RFC
3261 15.1; on an early dialog the INVITE gets 487, 15.1.2), is answered here
(OPTIONS), acknowledges our 2xx (ACK), or is passed on as follows.

Once a call is up, a re-INVITE (hold/resume, RFC 3264 8.4), UPDATE (RFC 3311)
or INFO (RFC 6086) from one phone is sent on the other leg's dialog with its
SDP rewritten to the relay; the final answer comes back to the phone that
asked, SDP rewritten again, and a 2xx to an INVITE is ACKed on the far leg and
re-sent on the near one until its ACK (RFC 3261 13.3.1.4). A forwarded request
that times out is answered 408.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pbx.b2bua_dtmf import info_digit
from pbx.call import ALLOW, SDP_TYPE, Call, Forwarded, Side, sdp_of
from pbx.sip.dialog import DialogId
from pbx.sip.errors import LocalProtocolError
from pbx.sip.events import RequestReceived
from pbx.sip.message import Request, Response
from pbx.sip.transaction import ClientKey
from pbx.sip.transport import NextHop
from pbx.store import Disposition, HangupSide

if TYPE_CHECKING:
    from pbx.b2bua import B2bua


HANGUP_SIDE = {Side.A: HangupSide.CALLER, Side.B: HangupSide.CALLEE}
FORWARDED_METHODS = frozenset({"INVITE", "UPDATE", "INFO"})
log = logging.getLogger(__name__)


class Forwarder:
    """In-dialog requests of the B2BUA's calls; `pending` holds those forwarded to the other
    leg, keyed by our client transaction."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b2bua = b2bua
        self.pending: dict[ClientKey, Forwarded] = {}

    def on_request(self, ev: RequestReceived) -> None:
        """A request with a To tag: matched to its dialog, answered or passed on (12.2.2)."""
        b, request = self.b2bua, ev.request
        dialog_id = DialogId(request.call_id, request.to_tag or "", request.from_tag)
        found = b._by_dialog.get(dialog_id)
        if found is None:
            if b.refer.on_detached(ev, dialog_id):
                return
            if request.method != "ACK":
                b._reply(ev, 481)
            return
        call, side = found
        dialog = call.dialog(side)
        assert dialog is not None
        if request.method == "BYE" and not call.answered:
            # The caller may end an early dialog with BYE (RFC 3261 15): 200 to it, 487 to
            # its INVITE (15.1.2). Handled before the dialog, which refuses an early BYE.
            b._reply(ev, 200)
            if call.originated:
                dialog.terminate()  # our own confirmed leg A: no BYE goes back
            call.hangup_side = HANGUP_SIDE[side]
            b._fail(call, 487, "Request Terminated", Disposition.CANCELLED)
            return
        error = dialog.receive_request(request)
        if error is not None:
            b._respond(ev.tx, error)
            return
        method = request.method
        if method == "ACK":
            entry = call.retransmitters.pop(request.cseq.seq, None)
            if entry is not None:
                entry[0].ack_received()
        elif method == "BYE":
            b._reply(ev, 200)
            if not b.refer.referrer_left(call, side):  # a referrer may leave while it rings
                b._hangup(call, side, HANGUP_SIDE[side])
        elif method == "OPTIONS":
            b._reply(ev, 200, headers=[("Allow", ALLOW)])
        elif method == "REFER":
            b.refer.on_refer(ev, call, side)
        elif method in FORWARDED_METHODS and call.b_dialog is not None:
            if method == "INFO":
                self._on_info(call, side, request)
            elif b.session_timers.answered_here(ev, call, side):
                return  # a refresh answered here, or an interval too brief
            self.forward(ev, call, side)
        else:
            b._reply(ev, 501 if method not in FORWARDED_METHODS else 491)

    def _on_info(self, call: Call, side: Side, request: Request) -> None:
        """A DTMF digit by INFO (RFC 6086) reaches the recording feature code too."""
        digit = info_digit(request.headers.get("Content-Type"), request.body)
        recordings = self.b2bua.recordings
        if digit is not None and recordings is not None:
            try:
                recordings.on_info_digit(call.label, side.leg, digit)
            except Exception:
                log.exception("[%s] recording feature code failed", call.label)

    def ack_stray(self, response: Response) -> None:
        """A 2xx retransmitted after its transaction ended: ACK it again (13.2.2.4)."""
        if not (200 <= response.status < 300 and response.cseq.method == "INVITE"):
            return
        dialog_id = DialogId.of_response(response)
        found = self.b2bua._by_dialog.get(dialog_id)
        if found is None:
            return
        call, side = found
        dialog, peer = call.dialog(side), call.peer(side)
        if dialog is not None and peer is not None:
            try:
                self.b2bua._send_ack(dialog.ack_for(response), peer)
            except LocalProtocolError:
                pass

    def forward(self, ev: RequestReceived, call: Call, side: Side) -> None:
        """Pass an in-dialog request to the other leg; its answer comes back later."""
        b2bua, request, other = self.b2bua, ev.request, side.other
        dialog, peer = call.dialog(other), call.peer(other)
        if dialog is None or peer is None or call.relay is None:
            b2bua._reply(ev, 481)
            return
        body, content_type = request.body, request.headers.get("Content-Type")
        sdp = sdp_of(request)
        if sdp is not None:
            call.set_remote(side.leg, sdp)
            body = call.offer_towards(other, sdp, peer.media_host)
            call.last_sdp[side] = sdp  # what a phone's transfer offers (pbx.b2bua_refer)
            if side is Side.A:  # what a transfer's new leg B is offered from now on
                call.a_offer = sdp
        try:
            forwarded = dialog.create_request(
                request.method,
                body=body,
                content_type=content_type if body else None,
                headers=b2bua.session_timers.request_headers(dialog.id),
            )
        except LocalProtocolError:
            b2bua._reply(ev, 491)
            return
        tx = b2bua.sip.send_request(forwarded, NextHop(*peer.destination, peer.transport))
        self.pending[tx] = Forwarded(call, side, ev.tx, request)

    def on_response(self, tx: ClientKey, response: Response | None) -> None:
        """The far leg's answer (None: it timed out) goes back to the leg that asked."""
        if response is not None and response.status < 200:
            return
        b2bua = self.b2bua
        pending = self.pending.pop(tx)
        call, side = pending.call, pending.from_side
        status = 408 if response is None else response.status
        reason = None if response is None else response.reason
        other = side.other
        other_dialog, other_peer = call.dialog(other), call.peer(other)
        if response is not None and other_dialog is not None:
            other_dialog.receive_response(response)
            if 200 <= status < 300 and pending.request.method == "INVITE" and other_peer:
                b2bua._send_ack(other_dialog.ack_for(response), other_peer)
        if call.ended:
            return
        answer = pending.request.make_response(status, reason)
        sdp = sdp_of(response) if response is not None else None
        peer = call.peer(side)
        if sdp is not None and call.relay is not None and peer is not None:
            call.set_remote(other.leg, sdp)
            call.last_sdp[other] = sdp
            offer = sdp_of(pending.request)  # None: the far phone made the offer (late offer)
            answer.body = (
                call.sdp_towards(side, sdp, peer.media_host)
                if offer is None
                else call.answer_towards(side, sdp, offer, peer.media_host)
            )
            answer.headers.add("Content-Type", SDP_TYPE)
        dialog = call.dialog(side)
        if 200 <= status < 300 and peer is not None:
            answer.headers.add("Contact", peer.local.contact)
            if dialog is not None:
                b2bua.session_timers.refreshed_by_peer(dialog.id, pending.request, answer)
        b2bua._respond(pending.server_tx, answer)
        if 200 <= status < 300 and pending.request.method == "INVITE" and dialog and peer:
            b2bua.resender.start(call, dialog, answer, peer)

    def forget(self, call: Call) -> None:
        for tx in [tx for tx, f in self.pending.items() if f.call is call]:
            del self.pending[tx]
