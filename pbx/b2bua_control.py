"""Call control for the HTTP API: click-to-call, hang up, blind transfer, DTMF, recording.

Click-to-call (`originate`) turns the usual call around: the PBX is the UAC
on both legs. It rings the caller's extension first with its own INVITE,
offering the relay's leg A ports (`pbx.sip.sdp.make_offer`: PCMU, PCMA,
telephone-event); the phone's 200 is ACKed at once, which completes that
offer/answer (RFC 3264 5-6). Then the second leg is placed as any call's leg
B, offering the first phone's answer (rewritten to the relay's leg B ports),
so both phones agree on a codec without a re-INVITE. While leg A rings, the
call shows `ringing` with the number being called as the caller ID the phone
displays; it is `connected` when leg B answers.

The second leg, and a transfer's target, may be an extension or an outside
number: one that is no extension follows the outbound routes to a trunk
(pbx.b2bua_trunks), with the caller's permission class.

A blind transfer ends leg B with BYE and places a new leg B to the target,
offering leg A's last SDP; the relay ports stay, so leg A needs no re-INVITE
(no REFER: the PBX is the one transferring; a phone's REFER is pbx.b2bua_refer). Hanging up
an answered call BYEs both legs (hangup side "system"); a ringing call's
forks are CANCELled and the caller gets 480. DTMF goes to leg B as INFO
application/dtmf-relay, one request per digit, spaced by their duration.

Errors the API maps (pbx.api.routes_calls): LookupError -> 404, ValueError ->
422, RuntimeError (the call is not in a state for it) -> 409.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from typing import TYPE_CHECKING

from pbx.admission import CallLimitReached
from pbx.b2bua_dtmf import DTMF_RELAY, dtmf_relay_body
from pbx.call import (
    ALLOW,
    SDP_TYPE,
    Call,
    CallState,
    Fork,
    Peer,
    Side,
    best_final,
    disposition_for,
    sdp_of,
    voice_codec,
)
from pbx.media.relay import Leg
from pbx.media.transcode import TranscodeError, transcoders_for_call
from pbx.net.local_address import family_of
from pbx.sip.dialog import Dialog, DialogSet
from pbx.sip.errors import LocalProtocolError
from pbx.sip.events import ResponseReceived
from pbx.sip.message import Request, Response
from pbx.sip.sdp import SessionDescription, make_offer
from pbx.sip.transaction import COMPLETED_ELSEWHERE, ClientKey, TransactionKey
from pbx.sip.transport import NextHop
from pbx.store import Binding, Disposition, HangupSide

if TYPE_CHECKING:
    from pbx.b2bua import B2bua
    from pbx.recording import RecordingManager

log = logging.getLogger(__name__)

DTMF_GAP = 0.05  # seconds of silence between two INFO digits


class CallControl:
    """The B2BUA's API-facing actions; `by_a_fork` maps click-to-call INVITEs to their call."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b2bua = b2bua
        self.by_a_fork: dict[ClientKey, Call] = {}

    # ------------------------------------------------------------------ lookups

    def call(self, label: str) -> Call:
        call = self.b2bua.calls.get(label)
        if call is None:
            raise LookupError(f"no active call {label}")
        return call

    def connected(self, label: str) -> Call:
        call = self.call(label)
        if call.b_dialog is None or call.b_peer is None or call.ended:
            raise RuntimeError(f"call {label} is not connected ({call.state.value})")
        return call

    def bindings(self, number: str) -> list[Binding]:
        """Reachable contacts of an enabled extension; LookupError / RuntimeError otherwise."""
        b = self.b2bua
        extension = b.store.find_extension(number)
        if extension is None or not extension.enabled:
            raise LookupError(f"no extension {number}")
        found = [x for x in b.store.active_bindings(b.wall(), number) if x.reachable]
        if not found:
            raise RuntimeError(f"extension {number} has no registered phone")
        return found

    # ------------------------------------------------------------------ hang up

    def hangup(self, label: str) -> None:
        """Answered: BYE both legs. Ringing: CANCEL the forks, 480 to the caller."""
        call = self.call(label)
        b = self.b2bua
        call.hangup_side = HangupSide.SYSTEM
        if call.answered:
            b._hangup(call, Side.A, HangupSide.SYSTEM)
        else:
            b._fail(call, 480, "Temporarily Unavailable (ended by the PBX)", Disposition.CANCELLED)

    def end_placed(self, call: Call, status: int, reason: str, disposition: Disposition) -> None:
        """End a call whose leg A is not waiting for our answer: cancel what rings, BYE leg A."""
        b = self.b2bua
        for fork in [*call.pending_forks(), *_pending(call.a_forks)]:
            b.sip.cancel(fork.tx)
        if call.a_dialog is not None:
            b._send_bye(call.a_dialog, call.a_peer)
        if not call.answered:  # a transfer that failed keeps the answered call's outcome
            call.sip_code, call.sip_reason, call.disposition = status, reason, disposition
        else:
            call.disposition = Disposition.ANSWERED
        log.info("[%s] ended: %d %s", call.label, status, reason)
        b._finish(call)

    def forget(self, call: Call) -> None:
        for tx in call.a_forks:
            self.by_a_fork.pop(tx, None)

    # ------------------------------------------------------------------ click-to-call

    def originate(
        self, from_ext: str, to_number: str, caller_id: str | None, x_headers: dict[str, str]
    ) -> str:
        """Ring `from_ext`'s phones; when one answers, call `to_number`. The new call's label."""
        b = self.b2bua
        if not b.accepting:
            raise RuntimeError("the PBX is stopping")
        bindings = self.bindings(from_ext)
        routable = b.store.find_extension(to_number) or b.trunking.routable(from_ext, to_number)
        if not routable:
            raise LookupError(f"no extension or outbound route for {to_number}")
        refusal = b.admit()
        if refusal is not None:
            raise CallLimitReached(refusal.reason)
        label = secrets.token_hex(8)
        first = b._peer((bindings[0].source_host, bindings[0].source_port), bindings[0].transport)
        template = self._invite(label, secrets.token_hex(6), from_ext, to_number, caller_id,
                                bindings[0].contact, first, b"")  # fmt: skip
        call = Call(
            label=label, caller=from_ext, callee=to_number, a_invite=template,
            a_tx=ClientKey(f"origin-{label}", "INVITE"), a_peer=first,
            a_tag=template.from_tag or "",
            a_offer=make_offer(first.media_host, 0),  # until leg A answers with its own
            start=b.wall(), x_headers=dict(x_headers), originated=True,
        )  # fmt: skip
        b.calls[label] = call
        log.info("[%s] click-to-call: %s then %s", label, from_ext, to_number)
        b._spawn(self._ring_a(call, bindings, caller_id))
        return label

    def _invite(
        self, label: str, tag: str, from_ext: str, shown: str, display: str | None,
        contact: str, peer: Peer, sdp: bytes,
    ) -> Request:  # fmt: skip
        """Our INVITE to the caller's phone: From shows the number it will be connected to."""
        here = peer.local.sent_by
        name = (display or "").replace("\\", "\\\\").replace('"', '\\"')
        caller_id = f'"{name}" ' if name else ""
        headers = [
            ("Via", f"SIP/2.0/{peer.transport} {here}"),
            ("Max-Forwards", "70"),
            ("From", f"{caller_id}<sip:{shown}@{here}>;tag={tag}"),
            ("To", f"<sip:{from_ext}@{here}>"),
            ("Call-ID", f"{label}-a@deskpbx"),
            ("CSeq", "1 INVITE"),
            ("Contact", peer.local.contact),
            ("Allow", ALLOW),
            ("User-Agent", self.b2bua.config.user_agent),
            ("Content-Type", SDP_TYPE),
        ]
        return Request("INVITE", contact, headers, sdp)

    async def _ring_a(self, call: Call, bindings: list[Binding], caller_id: str | None) -> None:
        b = self.b2bua
        try:
            session = await b.relay.open_session(
                call.label, family_of(call.a_peer.media_host), socket.AF_INET, quality=b.quality
            )
        except OSError as exc:
            log.error("[%s] no RTP ports: %s", call.label, exc)
            self.end_placed(call, 503, "No Media Ports", Disposition.FAILED)
            return
        if call.ended:
            session.close()
            return
        call.relay = session
        for binding in bindings:
            peer = b._peer((binding.source_host, binding.source_port), binding.transport)
            offer = make_offer(peer.media_host, session.local(Leg.A).rtp)
            sdp = call.sdp_towards(Side.A, offer, peer.media_host)
            invite = self._invite(call.label, call.a_tag, call.caller, call.callee, caller_id,
                                  binding.contact, peer, sdp)  # fmt: skip
            tx = b.sip.send_request(invite, NextHop(*peer.destination, peer.transport))
            call.a_forks[tx] = Fork(binding, invite, tx, peer)
            self.by_a_fork[tx] = call
        loop = asyncio.get_running_loop()
        call.timers.append(loop.call_later(b.config.no_answer_timeout, b._no_answer, call))

    def on_response(self, ev: ResponseReceived) -> bool:
        """A response to our INVITE towards the click-to-call caller; False if not ours."""
        call = self.by_a_fork.get(ev.tx) if isinstance(ev.tx, ClientKey) else None
        if call is None:
            return False
        fork, response = call.a_forks[ev.tx], ev.response  # type: ignore[index]
        if response.status == 100:
            return True
        outcome = call.a_dialogs.invite_response(fork.invite, response, fork.peer.local)
        if response.status < 200:
            if response.status in (180, 183) and call.state is CallState.DIALING:
                self.b2bua._set_state(call, CallState.RINGING)
        elif response.status < 300:
            assert outcome.dialog is not None
            self._a_answered(call, fork, outcome.dialog, response)
        else:
            fork.final = response
            self._a_failed(call)
        return True

    def on_timeout(self, tx: TransactionKey) -> bool:
        call = self.by_a_fork.get(tx) if isinstance(tx, ClientKey) else None
        if call is None:
            return False
        call.a_forks[tx].timed_out = True  # type: ignore[index]
        self._a_failed(call)
        return True

    def _a_answered(self, call: Call, fork: Fork, dialog: Dialog, response: Response) -> None:
        b = self.b2bua
        b._send_ack(dialog.ack_for(response), fork.peer)
        if dialog is call.a_dialog:  # a 2xx retransmitted (RFC 6026 7.2): the ACK was all
            return
        if call.ended or call.a_dialog is not None:
            b._send_bye(dialog, fork.peer)  # a second phone answered too late
            return
        call.a_dialog, call.a_peer, call.a_tx = dialog, fork.peer, fork.tx
        b._by_dialog[dialog.id] = (call, Side.A)
        for other in _pending(call.a_forks):
            if other is not fork:
                b.sip.cancel(other.tx, COMPLETED_ELSEWHERE)
        sdp = sdp_of(response)
        if sdp is None or not call.set_remote(Leg.A, sdp):
            self.end_placed(call, 488, "Not Acceptable Here (no usable answer)", Disposition.FAILED)
            return
        call.a_offer = sdp
        call.a_codec, call.a_events = voice_codec(sdp)
        b._cancel_timers(call)
        self._place_b(call)

    def _place_b(self, call: Call) -> None:
        """Leg B towards the callee's phones, or out through a trunk when the number is no
        extension, offering leg A's SDP through the relay."""
        b = self.b2bua
        via_trunk = b.store.find_extension(call.callee) is None and b.trunking.place(call)
        if not via_trunk:
            try:
                bindings = self.bindings(call.callee)
            except (LookupError, RuntimeError) as exc:
                log.info("[%s] cannot reach %s: %s", call.label, call.callee, exc)
                self.end_placed(call, 480, "Temporarily Unavailable", Disposition.NO_ANSWER)
                return
            for binding in bindings:
                b._fork(call, binding)
        if not call.ended:
            loop = asyncio.get_running_loop()
            call.timers.append(loop.call_later(b.config.no_answer_timeout, b._no_answer, call))

    def _a_failed(self, call: Call) -> None:
        if call.ended or call.a_dialog is not None or _pending(call.a_forks):
            return
        best = best_final([f.final for f in call.a_forks.values() if f.final is not None])
        if best is None or best.status in (408, 487) or best.status >= 500:
            self.end_placed(call, 480, "Temporarily Unavailable", Disposition.NO_ANSWER)
        else:
            call.hangup_side = HangupSide.CALLER  # the caller's own phone turned it down
            self.end_placed(call, best.status, best.reason, disposition_for(best.status))

    def bridge_codecs(self, call: Call, answer: SessionDescription) -> None:
        """Leg B answered: when leg A settled on the other G.711 law (a transfer, or a
        click-to-call caller), the relay transcodes between them (RFC 3551 4.5.14)."""
        if call.a_waits:  # leg A gets this very answer: Call.answer_towards settles the laws
            return
        codec, events = voice_codec(answer)
        if codec is None or call.a_codec is None or call.relay is None:
            return
        try:
            pair = transcoders_for_call(call.a_codec, codec, call.a_events, events)
        except TranscodeError as exc:
            log.warning("[%s] legs cannot be bridged: %s", call.label, exc)
            return
        call.relay.set_transcoders(*pair)
        if pair != (None, None):
            log.info("[%s] transcoding %s <-> %s", call.label, call.a_codec.name, codec.name)

    # ------------------------------------------------------------------ transfer, DTMF

    def transfer(self, label: str, target: str) -> None:
        """Blind transfer: BYE leg B, ring `target` (an extension, or an outside number through
        the outbound routes) with leg A's SDP; the relay ports stay."""
        call = self.connected(label)
        if call.rerouting:
            raise RuntimeError(f"call {label} is already being transferred")
        b = self.b2bua
        outside = b.store.find_extension(target) is None
        if outside and not b.trunking.routable(call.caller, target):
            raise LookupError(f"no extension or outbound route for {target}")
        bindings = [] if outside else self.bindings(target)
        old_dialog, old_peer = call.b_dialog, call.b_peer
        assert old_dialog is not None and old_peer is not None
        b._send_bye(old_dialog, old_peer)
        b._by_dialog.pop(old_dialog.id, None)
        for tx in call.forks:
            b._by_fork.pop(tx, None)
        b.trunking.release(call)  # the old leg B's trunk slot, if it went out through one
        call.forks, call.b_dialogs = {}, DialogSet()
        call.b_dialog, call.b_peer = None, None
        call.callee, call.rerouting = target, True
        log.info("[%s] blind transfer to %s", label, target)
        if outside:
            b.trunking.place(call)
        for binding in bindings:
            b._fork(call, binding)
        if not call.ended:
            loop = asyncio.get_running_loop()
            call.timers.append(loop.call_later(b.config.no_answer_timeout, b._no_answer, call))

    def send_dtmf(self, label: str, digits: str, duration_ms: int) -> None:
        """INFO application/dtmf-relay to leg B, one digit per request (RFC 6086)."""
        call = self.connected(label)
        bodies = [dtmf_relay_body(digit, duration_ms) for digit in digits]  # ValueError: 422
        loop = asyncio.get_running_loop()
        step = duration_ms / 1000 + DTMF_GAP
        for index, body in enumerate(bodies):
            call.timers.append(loop.call_later(index * step, self._send_info, call, body))

    def _send_info(self, call: Call, body: bytes) -> None:
        dialog, peer = call.b_dialog, call.b_peer
        if call.ended or dialog is None or peer is None:
            return
        try:
            info = dialog.info(body, DTMF_RELAY)
        except LocalProtocolError:
            return
        self.b2bua.sip.send_request(info, NextHop(*peer.destination, peer.transport))

    # ------------------------------------------------------------------ recording

    def start_recording(self, label: str) -> object:
        call = self.connected(label)
        return self._recordings().start_recording(call.label)

    def stop_recording(self, label: str) -> None:
        call = self.connected(label)
        self._recordings().stop_recording(call.label)

    def _recordings(self) -> RecordingManager:
        if self.b2bua.recordings is None:
            raise RuntimeError("recording is not available on this PBX")
        return self.b2bua.recordings


def _pending(forks: dict[ClientKey, Fork]) -> list[Fork]:
    return [f for f in forks.values() if f.final is None and not f.timed_out]
