"""In-dialog requests passed from one leg to the other, and their answers passed back.

Once a call is up, a re-INVITE (hold/resume, RFC 3264 8.4), UPDATE (RFC 3311)
or INFO (RFC 6086) from one phone is sent on the other leg's dialog with its
SDP rewritten to the relay; the final answer comes back to the phone that
asked, SDP rewritten again, and a 2xx to an INVITE is ACKed on the far leg and
re-sent on the near one until its ACK (RFC 3261 13.3.1.4). A forwarded request
that times out is answered 408.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pbx.call import SDP_TYPE, Call, Forwarded, Side, sdp_of
from pbx.sip.errors import LocalProtocolError
from pbx.sip.events import RequestReceived
from pbx.sip.message import Response
from pbx.sip.transaction import ClientKey
from pbx.sip.transport import NextHop

if TYPE_CHECKING:
    from pbx.b2bua import B2bua


class Forwarder:
    """The B2BUA's table of requests forwarded to the other leg, keyed by our client tx."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b2bua = b2bua
        self.pending: dict[ClientKey, Forwarded] = {}

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
            body = call.sdp_towards(other, sdp, peer.media_host)
        try:
            forwarded = dialog.create_request(
                request.method, body=body, content_type=content_type if body else None
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
            answer.body = call.sdp_towards(side, sdp, peer.media_host)
            answer.headers.add("Content-Type", SDP_TYPE)
        if 200 <= status < 300 and peer is not None:
            answer.headers.add("Contact", peer.local.contact)
        b2bua._respond(pending.server_tx, answer)
        dialog = call.dialog(side)
        if 200 <= status < 300 and pending.request.method == "INVITE" and dialog and peer:
            b2bua.resender.start(call, dialog, answer, peer)

    def forget(self, call: Call) -> None:
        for tx in [tx for tx, f in self.pending.items() if f.call is call]:
            del self.pending[tx]
