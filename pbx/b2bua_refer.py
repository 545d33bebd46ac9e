"""Transfers a phone asks for: REFER inside a bridged call (RFC 3515, RFC 5589 6).

A phone's Transfer button sends REFER in its dialog with the PBX; Refer-To
names the target (sip:NUMBER@...). The PBX, being a B2BUA, carries the
transfer out itself instead of passing the REFER on: the phone that sent it
is the *referrer*, the party on the call's other leg the *transferee*.

1. The REFER gets 202 Accepted and the referrer a NOTIFY (Event: refer,
   message/sipfrag "SIP/2.0 100 Trying", RFC 3515 2.4.4-2.4.5).
2. The target's registered phones are rung with a new INVITE offering the
   transferee's latest SDP through the referrer's relay ports. While they
   ring, the original call goes on unchanged.
3. When the target answers, its dialog takes the referrer's place in the
   call and the relay leg is pointed at it; the transferee keeps talking to
   the same relay port, so it needs no re-INVITE (the relay transcodes when
   the target settled on the other G.711 law). The referrer gets NOTIFY
   "SIP/2.0 200 OK" (Subscription-State: terminated) and, once that is
   answered, BYE (unless it sent BYE first, which is answered 200).
4. When the target fails (unknown number: 404, unregistered: 480, busy,
   no answer...), the referrer gets the failure as final NOTIFY and the
   original call continues: the referrer may take the transferee back.

CDRs, the choice made: as Asterisk/FreePBX users expect one CDR per pair of
parties, the original call's CDR is written when the target answers, ended
then, with the referrer as the hangup side; the same `Call` then carries on
as the transferred call (transferee -> target, started at the REFER,
answered when the target answered) and writes its own CDR when it ends.

Attended transfer: Refer-To carries a Replaces header (RFC 3891 3, RFC 5589
7) naming the referrer's dialog of a second call through the PBX (as the
referrer sees it: to-tag ours, from-tag its own). The party kept on that
second call is re-INVITEd (RFC 3261 14) to the relay port the referrer had
in the first call, with the transferee's SDP; on its 2xx it takes the
referrer's place there, the second call ends (its CDR: hung up by the
referrer) and its relay closes. A Replaces naming no dialog of ours is taken
as a blind transfer to the Refer-To number. Targets that are no extension
are reported 404 (no trunk routing for a phone's REFER yet).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pbx.call import (
    ALLOW,
    SDP_TYPE,
    Call,
    Fork,
    Peer,
    Side,
    best_final,
    media_stats,
    sdp_of,
    voice_codec,
)
from pbx.media.transcode import TranscodeError, transcoders_for_call
from pbx.sip.dialog import Dialog, DialogId, DialogSet
from pbx.sip.errors import LocalProtocolError
from pbx.sip.events import RequestReceived, ResponseReceived
from pbx.sip.message import Request, Response
from pbx.sip.sdp import Direction, SessionDescription, rewrite_for_relay, with_other_law
from pbx.sip.transaction import COMPLETED_ELSEWHERE, ClientKey, TransactionKey
from pbx.sip.transport import NextHop
from pbx.store import Disposition, HangupSide
from pbx.ua.transfer import split_refer_to

if TYPE_CHECKING:
    from pbx.b2bua import B2bua

log = logging.getLogger(__name__)

SIPFRAG = "message/sipfrag;version=2.0"
RELATCH_AGAIN = 0.2  # seconds after the referrer's BYE: re-point its relay leg once more
HANGUP_SIDE = {Side.A: HangupSide.CALLER, Side.B: HangupSide.CALLEE}


class TransferState(enum.Enum):
    RINGING = "ringing"  # the target's phones ring; the original call goes on
    DONE = "done"  # answered or failed; only the final NOTIFY (and BYE) remain


@dataclass(slots=True)
class Transfer:
    """One REFER being carried out for `call`; `referrer` is the side that sent it."""

    call: Call
    referrer: Side
    dialog: Dialog  # the referrer's dialog, kept for NOTIFYs after it leaves the call
    peer: Peer
    target: str
    began: float
    tag: str = field(default_factory=lambda: secrets.token_hex(6))
    forks: dict[ClientKey, Fork] = field(default_factory=dict)
    dialogs: DialogSet = field(default_factory=DialogSet)
    state: TransferState = TransferState.RINGING
    bye_after: ClientKey | None = None  # the final NOTIFY; its answer lets us BYE
    answer: SessionDescription | None = None  # the target's SDP, once it answered
    relatched: bool = False
    referrer_gone: bool = False  # it sent BYE while the target rang (a phone's blind transfer)
    #: Attended: the second call and the referrer's side in it (its other side is kept).
    other: tuple[Call, Side] | None = None

    @property
    def transferee(self) -> Side:
        return self.referrer.other

    def pending(self) -> list[Fork]:
        return [f for f in self.forks.values() if f.final is None and not f.timed_out]


def refer_target(value: str) -> tuple[str | None, str | None]:
    """The number (user part) a Refer-To names, and its Replaces header if any.

    Refer-To is a name-addr or addr-spec (RFC 3515 2.1), so a display name may come first.
    """
    start = value.find("<")
    uri, replaces = split_refer_to(value[start:] if start >= 0 else value)
    scheme, _, rest = uri.partition(":")
    if scheme.lower() not in ("sip", "sips", "tel") or not rest:
        return None, replaces
    user = rest.split("@", 1)[0] if "@" in rest or scheme.lower() == "tel" else ""
    user = user.split(";", 1)[0]
    return (user or None), replaces


def both_ways(sdp: SessionDescription) -> SessionDescription:
    """`sdp` with its audio sendrecv: a transferee is usually on hold when the referrer
    transfers, and its recvonly answer must not put the new party on hold (RFC 3264 8.4)."""
    media = tuple(
        dataclasses.replace(m, direction=None) if m.kind == "audio" else m for m in sdp.media
    )
    return dataclasses.replace(sdp, direction=None, media=media)


def one_way(sdp: SessionDescription) -> bool:
    """Whether the audio of `sdp` is on hold in either direction (RFC 3264 8.4)."""
    audio = [m for m in sdp.media if m.kind == "audio" and m.port]
    return any(sdp.direction_for(m) is not Direction.SENDRECV for m in audio)


class ReferHandler:
    """REFERs of the B2BUA's calls, the target INVITEs they cause and the NOTIFYs sent."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b2bua = b2bua
        self.active: dict[str, Transfer] = {}  # by call label
        self.by_fork: dict[ClientKey, Transfer] = {}
        self.notifies: dict[ClientKey, Transfer] = {}
        self.detached: dict[DialogId, Transfer] = {}  # referrers that left their call
        self.byes: dict[ClientKey, Transfer] = {}  # our BYEs to referrers
        self.reinvites: dict[ClientKey, Transfer] = {}  # attended: to the party kept
        self.resumes: dict[ClientKey, tuple[Call, Side]] = {}  # taking a transferee off hold

    def table_size(self) -> int:
        tables = (self.active, self.by_fork, self.notifies, self.detached, self.byes,
                  self.reinvites, self.resumes)  # fmt: skip
        return sum(len(table) for table in tables)

    # ------------------------------------------------------------------ the REFER

    def on_refer(self, ev: RequestReceived, call: Call, side: Side) -> None:
        """REFER in `call`'s dialog on `side` (already matched and CSeq-checked)."""
        b, request = self.b2bua, ev.request
        if not call.answered or call.b_dialog is None or call.ended:
            b._reply(ev, 403, "Call Not Connected")
            return
        if call.rerouting or call.label in self.active:
            b._reply(ev, 491, "Transfer Already In Progress")
            return
        refer_to = request.headers.get("Refer-To")
        if not refer_to:
            b._reply(ev, 400, "Missing Refer-To")
            return
        number, replaces = refer_target(refer_to)
        other = self._replaced(replaces) if replaces is not None else None
        if other is not None:
            self._attended(ev, call, side, other)
            return
        if number is None:
            b._reply(ev, 416, "Unsupported URI Scheme")
            return
        dialog, peer = call.dialog(side), call.peer(side)
        assert dialog is not None and peer is not None
        b._reply(ev, 202, headers=[("Contact", peer.local.contact)])
        transfer = Transfer(call, side, dialog, peer, number, b.wall())
        self._notify(transfer, 100, "Trying", final=False)
        log.info("[%s] %s refers the call to %s", call.label, side.value, number)
        failure = self._ring(transfer)
        if failure is not None:
            self._failed(transfer, *failure)

    def _replaced(self, replaces: str) -> tuple[Call, Side] | None:
        """The call and side whose dialog a Replaces value names (RFC 3891 3); the tags are
        as the referrer sees that dialog, so to-tag is our local tag."""
        call_id, _, params = replaces.partition(";")
        tags = dict(p.strip().split("=", 1) for p in params.split(";") if "=" in p)
        to_tag, from_tag = tags.get("to-tag", ""), tags.get("from-tag")
        return self.b2bua._by_dialog.get(DialogId(call_id.strip(), to_tag, from_tag))

    def _attended(
        self, ev: RequestReceived, call: Call, side: Side, other: tuple[Call, Side]
    ) -> None:
        """Bridge `call`'s transferee with the party kept on the other call (RFC 5589 7)."""
        b, (second, its_side) = self.b2bua, other
        kept = its_side.other
        if (
            second is call
            or not second.answered
            or second.ended
            or second.rerouting
            or (second.label in self.active or second.relay is None or call.relay is None)
        ):
            b._reply(ev, 403, "Replaced Call Not Connected")
            return
        dialog, peer = call.dialog(side), call.peer(side)
        kept_dialog, kept_peer = second.dialog(kept), second.peer(kept)
        assert dialog and peer and kept_dialog and kept_peer
        b._reply(ev, 202, headers=[("Contact", peer.local.contact)])
        target = second.caller if kept is Side.A else second.callee
        transfer = Transfer(call, side, dialog, peer, target, b.wall(), other=other)
        self._notify(transfer, 100, "Trying", final=False)
        sdp = self._transferee_sdp(transfer)
        session = second.sessions.get(kept)
        if sdp is None or session is None:
            self._failed(transfer, 488, "Not Acceptable Here")
            return
        port = call.relay.local(side.leg).rtp
        offer = with_other_law(sdp)  # the kept party may be on the other law: the relay converts
        body = bytes(session.describe(rewrite_for_relay(offer, kept_peer.media_host, port)))
        try:
            headers = [("User-Agent", b.config.user_agent)]
            headers += b.session_timers.request_headers(kept_dialog.id)
            invite = kept_dialog.reinvite(body, headers=headers)
        except LocalProtocolError:
            self._failed(transfer, 491, "Request Pending")
            return
        tx = b.sip.send_request(invite, NextHop(*kept_peer.destination, kept_peer.transport))
        self.reinvites[tx] = transfer
        self.active[call.label] = self.active[second.label] = transfer
        log.info("[%s] attended transfer: %s joins from call %s", call.label, target,
                 second.label)  # fmt: skip

    def _reinvited(self, transfer: Transfer, response: Response | None) -> None:
        """The kept party answered our re-INVITE: it takes the referrer's place."""
        b, call = self.b2bua, transfer.call
        assert transfer.other is not None
        second, its_side = transfer.other
        kept = its_side.other
        dialog, peer = second.dialog(kept), second.peer(kept)
        status = 408 if response is None else response.status
        if response is not None and dialog is not None and peer is not None:
            dialog.receive_response(response)
            if 200 <= status < 300:
                b._send_ack(dialog.ack_for(response), peer)
        if transfer.state is not TransferState.RINGING:
            return
        sdp = sdp_of(response) if 200 <= status < 300 else None
        alive = not (call.ended or second.ended) and dialog is not None and peer is not None
        if not alive or sdp is None or not call.set_remote(transfer.referrer.leg, sdp):
            reason = "OK" if status < 300 else (response.reason if response else "Timeout")
            self._failed(transfer, 488 if status < 300 else status, reason)
            return
        assert dialog is not None and peer is not None
        transfer.state, transfer.answer = TransferState.DONE, sdp
        self.active.pop(call.label, None)
        self.active.pop(second.label, None)
        call.sessions[transfer.referrer] = second.sessions[kept]
        self._end_second(transfer, second, its_side, dialog)
        self._end_original(transfer)
        self._take_over(transfer, dialog, peer, sdp)
        log.info("[%s] attended transfer done", call.label)
        transfer.bye_after = self._notify(transfer, 200, "OK", final=True)
        if transfer.bye_after is None:
            self._bye_referrer(transfer)

    def _end_second(self, transfer: Transfer, second: Call, its_side: Side, kept: Dialog) -> None:
        """The second call loses its kept party to the first and ends: BYE to the referrer."""
        b = self.b2bua
        b._by_dialog.pop(kept.id, None)
        if its_side is Side.A:
            second.b_dialog, second.b_peer = None, None
        else:
            second.a_dialog = None
        b._hangup(second, its_side.other, HANGUP_SIDE[its_side])

    def _ring(self, transfer: Transfer) -> tuple[int, str] | None:
        """INVITE the target's phones; the failure to report when there is none to ring."""
        b = self.b2bua
        extension = b.store.find_extension(transfer.target)
        if extension is None or not extension.enabled:
            return 404, "Not Found"
        bindings = b._bindings([transfer.target])
        if not bindings:
            return 480, "Temporarily Unavailable"
        call = transfer.call
        sdp = self._transferee_sdp(transfer)
        if sdp is None or call.relay is None:
            return 488, "Not Acceptable Here"
        self.active[call.label] = transfer
        for binding in bindings:
            peer = b._peer((binding.source_host, binding.source_port), binding.transport)
            body = call.offer_towards(transfer.referrer, sdp, peer.media_host)
            invite = self._invite(transfer, binding.contact, peer, body)
            tx = b.sip.send_request(invite, NextHop(*peer.destination, peer.transport))
            transfer.forks[tx] = Fork(binding, invite, tx, peer)
            self.by_fork[tx] = transfer
        return None

    @staticmethod
    def _transferee_sdp(transfer: Transfer) -> SessionDescription | None:
        call = transfer.call
        sdp = call.last_sdp.get(transfer.transferee)
        if sdp is None and transfer.transferee is Side.A:
            sdp = call.a_offer
        return None if sdp is None else both_ways(sdp)

    def _invite(self, transfer: Transfer, contact: str, peer: Peer, sdp: bytes) -> Request:
        """The INVITE to one of the target's phones: From shows the transferee (RFC 5589 6)."""
        call, here = transfer.call, peer.local.sent_by
        call.forks_sent += 1
        headers = [
            ("Via", f"SIP/2.0/{peer.transport} {here}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:{self._number(transfer, transfer.transferee)}@{here}>"
                     f";tag={transfer.tag}"),
            ("To", f"<sip:{transfer.target}@{here}>"),
            ("Call-ID", f"{call.label}-r{call.forks_sent}@deskpbx"),
            ("CSeq", "1 INVITE"),
            ("Contact", peer.local.contact),
            ("Allow", ALLOW),
            ("User-Agent", self.b2bua.config.user_agent),
            ("Referred-By", f"<sip:{self._number(transfer, transfer.referrer)}@{here}>"),
            ("Content-Type", SDP_TYPE),
        ]  # fmt: skip
        return Request("INVITE", contact, headers, sdp)

    @staticmethod
    def _number(transfer: Transfer, side: Side) -> str:
        return transfer.call.caller if side is Side.A else transfer.call.callee

    # ------------------------------------------------------------------ responses

    def on_response(self, ev: ResponseReceived) -> bool:
        """A response to a target INVITE or to a NOTIFY of ours; False if not ours."""
        if not isinstance(ev.tx, ClientKey):
            return False
        if ev.tx in self.notifies:
            if ev.response.status >= 200:
                self._notify_done(self.notifies.pop(ev.tx), ev.tx)
            return True
        if ev.tx in self.byes:
            if ev.response.status >= 200:
                self._relatch(self.byes.pop(ev.tx))
            return True
        if ev.tx in self.resumes:
            if ev.response.status >= 200:
                self._resumed(*self.resumes.pop(ev.tx), ev.response)
            return True
        if ev.tx in self.reinvites:
            if ev.response.status >= 200:
                self._reinvited(self.reinvites.pop(ev.tx), ev.response)
            return True
        transfer = self.by_fork.get(ev.tx)
        if transfer is None:
            return False
        fork, response = transfer.forks[ev.tx], ev.response
        if response.status == 100:
            return True
        outcome = transfer.dialogs.invite_response(fork.invite, response, fork.peer.local)
        if 200 <= response.status < 300:
            assert outcome.dialog is not None
            self._answered(transfer, fork, response, outcome.dialog)
        elif response.status >= 300:
            fork.final = response
            self._fork_failed(transfer)
        return True

    def on_timeout(self, tx: TransactionKey) -> bool:
        if not isinstance(tx, ClientKey):
            return False
        if tx in self.notifies:
            self._notify_done(self.notifies.pop(tx), tx)
            return True
        if tx in self.byes:
            self._relatch(self.byes.pop(tx))
            return True
        if tx in self.resumes:
            self._resumed(*self.resumes.pop(tx), None)
            return True
        if tx in self.reinvites:
            self._reinvited(self.reinvites.pop(tx), None)
            return True
        transfer = self.by_fork.get(tx)
        if transfer is None:
            return False
        transfer.forks[tx].timed_out = True
        self._fork_failed(transfer)
        return True

    def _fork_failed(self, transfer: Transfer) -> None:
        if transfer.state is not TransferState.RINGING or transfer.pending():
            return
        best = best_final([f.final for f in transfer.forks.values() if f.final is not None])
        if best is None or best.status == 408:
            self._failed(transfer, 480, "Temporarily Unavailable")
        else:
            self._failed(transfer, best.status, best.reason)

    def referrer_left(self, call: Call, side: Side) -> bool:
        """BYE from `side` (answered 200): True when it is the referrer of a transfer still
        ringing, which then goes on without it; many phones hang up right after the 202."""
        transfer = self.active.get(call.label)
        if transfer is None or transfer.call is not call or transfer.referrer is not side:
            return False
        transfer.referrer_gone = True
        self.b2bua._by_dialog.pop(transfer.dialog.id, None)
        self.detached[transfer.dialog.id] = transfer  # a retransmitted BYE still gets 200
        log.info("[%s] the referrer left; the transfer goes on", call.label)
        return True

    def _failed(self, transfer: Transfer, status: int, reason: str) -> None:
        """The target cannot be reached: tell the referrer; the original call goes on, unless
        the referrer already left it: then the transferee is hung up."""
        transfer.state = TransferState.DONE
        self._drop_forks(transfer)
        labels = [transfer.call.label] + ([transfer.other[0].label] if transfer.other else [])
        for label in labels:
            if self.active.get(label) is transfer:
                del self.active[label]
        log.info("[%s] transfer to %s failed: %d %s", transfer.call.label, transfer.target,
                 status, reason)  # fmt: skip
        if transfer.referrer_gone:
            self.detached.pop(transfer.dialog.id, None)
            self.b2bua._hangup(transfer.call, transfer.referrer, HANGUP_SIDE[transfer.referrer])
            return
        self._notify(transfer, status, reason, final=True)

    def _answered(self, transfer: Transfer, fork: Fork, response: Response, dialog: Dialog) -> None:
        b, call = self.b2bua, transfer.call
        b._send_ack(dialog.ack_for(response), fork.peer)
        if transfer.state is not TransferState.RINGING or call.ended:
            if call.dialog(transfer.referrer) is not dialog:
                b._send_bye(dialog, fork.peer)  # too late: the call ended or another answered
            return
        transfer.state = TransferState.DONE
        for other in transfer.pending():
            if other is not fork:
                b.sip.cancel(other.tx, COMPLETED_ELSEWHERE)
        self._drop_forks(transfer)
        self.active.pop(call.label, None)
        sdp = sdp_of(response)
        if sdp is None or not call.set_remote(transfer.referrer.leg, sdp):
            b._send_bye(dialog, fork.peer)
            self._notify(transfer, 488, "Not Acceptable Here", final=True)
            return
        transfer.answer = sdp
        self._end_original(transfer)
        self._take_over(transfer, dialog, fork.peer, sdp)
        log.info("[%s] transferred: %s now talks to %s", call.label,
                 self._number(transfer, transfer.transferee), transfer.target)  # fmt: skip
        transfer.bye_after = self._notify(transfer, 200, "OK", final=True)
        if transfer.bye_after is None:
            self._bye_referrer(transfer)

    def _end_original(self, transfer: Transfer) -> None:
        """Write the original call's CDR, ended now by the referrer."""
        b, call = self.b2bua, transfer.call
        stats = media_stats(call) if call.relay is not None else None
        original = dataclasses.replace(
            call, end=b.wall(), disposition=Disposition.ANSWERED,
            hangup_side=HANGUP_SIDE[transfer.referrer], media_stats=stats,
        )  # fmt: skip
        try:
            b.store.add_cdr(original.to_cdr())
        except Exception:  # a CDR failure must not take the PBX down
            log.exception("[%s] could not write the transferred call's CDR", call.label)

    def _take_over(
        self, transfer: Transfer, dialog: Dialog, peer: Peer, sdp: SessionDescription
    ) -> None:
        """The target's dialog replaces the referrer's; the call becomes transferee -> target."""
        b, call, side = self.b2bua, transfer.call, transfer.referrer
        b._by_dialog.pop(transfer.dialog.id, None)
        self.detached[transfer.dialog.id] = transfer
        b._by_dialog[dialog.id] = (call, side)
        transferee = self._number(transfer, transfer.transferee)
        if side is Side.B:
            call.b_dialog, call.b_peer, call.last_sdp[Side.B] = dialog, peer, sdp
        else:
            call.a_dialog, call.a_peer, call.a_offer = dialog, peer, sdp
            call.last_sdp[Side.A] = sdp
            call.a_codec, call.a_events = voice_codec(sdp)
        call.caller, call.callee = transferee, transfer.target
        call.start, call.answer = transfer.began, b.wall()
        call.hangup_side, call.sip_code, call.sip_reason = HangupSide.SYSTEM, 200, "OK"
        self._rebridge(call)
        self._resume(call, transfer.transferee, sdp)

    def _resume(self, call: Call, side: Side, target: SessionDescription) -> None:
        """Re-INVITE the transferee only when the referrer left it on hold (RFC 5589 6:
        transferors hold first), offering the target's audio both ways."""
        held = call.last_sdp.get(side)
        dialog, peer = call.dialog(side), call.peer(side)
        if held is None or not one_way(held) or dialog is None or peer is None:
            return
        body = call.offer_towards(side, both_ways(target), peer.media_host)
        try:
            headers = [("User-Agent", self.b2bua.config.user_agent)]
            headers += self.b2bua.session_timers.request_headers(dialog.id)
            invite = dialog.reinvite(body, headers=headers)
        except LocalProtocolError:
            return
        tx = self.b2bua.sip.send_request(invite, NextHop(*peer.destination, peer.transport))
        self.resumes[tx] = (call, side)

    def _resumed(self, call: Call, side: Side, response: Response | None) -> None:
        dialog, peer = call.dialog(side), call.peer(side)
        if response is None or dialog is None or peer is None:
            return
        dialog.receive_response(response)
        if not 200 <= response.status < 300:
            return
        self.b2bua._send_ack(dialog.ack_for(response), peer)
        sdp = sdp_of(response)
        if sdp is not None and not call.ended:
            call.set_remote(side.leg, sdp)
            call.last_sdp[side] = sdp
            if side is Side.A:  # the transferee may have taken the other law this time
                call.a_codec, call.a_events = voice_codec(sdp)
            self._rebridge(call)

    @staticmethod
    def _rebridge(call: Call) -> None:
        """Transcode between the legs when they settled on different G.711 laws."""
        b_sdp = call.last_sdp.get(Side.B)
        b_codec, b_events = voice_codec(b_sdp) if b_sdp else (None, None)
        if call.relay is None or call.a_codec is None or b_codec is None:
            return
        try:
            pair = transcoders_for_call(call.a_codec, b_codec, call.a_events, b_events)
        except TranscodeError as exc:
            log.warning("[%s] legs cannot be bridged: %s", call.label, exc)
            return
        call.relay.set_transcoders(*pair)

    # ------------------------------------------------------------------ NOTIFY, BYE

    def _notify(
        self, transfer: Transfer, status: int, reason: str, final: bool
    ) -> ClientKey | None:
        """NOTIFY the referrer with a sipfrag status line (RFC 3515 2.4.4, 2.4.5)."""
        state = "terminated;reason=noresource" if final else "active;expires=60"
        try:
            request = transfer.dialog.create_request(
                "NOTIFY",
                body=f"SIP/2.0 {status} {reason}\r\n".encode(),
                content_type=SIPFRAG,
                headers=[("Event", "refer"), ("Subscription-State", state),
                         ("Contact", transfer.peer.local.contact)],
            )  # fmt: skip
        except LocalProtocolError:
            return None
        peer = transfer.peer
        tx = self.b2bua.sip.send_request(request, NextHop(*peer.destination, peer.transport))
        self.notifies[tx] = transfer
        return tx

    def _notify_done(self, transfer: Transfer, tx: ClientKey) -> None:
        if transfer.bye_after == tx:
            self._bye_referrer(transfer)

    def _bye_referrer(self, transfer: Transfer) -> None:
        if self.detached.pop(transfer.dialog.id, None) is None:
            return  # it sent BYE itself
        if transfer.referrer_gone:
            self._relatch(transfer)
            return
        peer = transfer.peer
        try:
            bye = transfer.dialog.bye(headers=[("User-Agent", self.b2bua.config.user_agent)])
        except LocalProtocolError:
            return
        tx = self.b2bua.sip.send_request(bye, NextHop(*peer.destination, peer.transport))
        self.byes[tx] = transfer

    def _relatch(self, transfer: Transfer) -> None:
        """The referrer's phone stopped sending: point its relay leg at the target again.

        Its last RTP packets may have latched the relay leg back to it after the target
        answered (symmetric RTP latching takes the first source after a new SDP), which
        would leave the target unheard until the latch went stale; once the referrer's
        dialog is over, its media is too. Again a moment later, for packets in flight.
        """
        call = transfer.call
        if call.ended or transfer.answer is None:
            return
        call.set_remote(transfer.referrer.leg, transfer.answer)
        if not transfer.relatched:
            transfer.relatched = True
            loop = asyncio.get_running_loop()
            call.timers.append(loop.call_later(RELATCH_AGAIN, self._relatch, transfer))

    def on_detached(self, ev: RequestReceived, dialog_id: DialogId) -> bool:
        """A request on a referrer's dialog that left its call: BYE ends it; False if unknown."""
        transfer = self.detached.get(dialog_id)
        if transfer is None:
            return False
        method = ev.request.method
        if method == "ACK":
            return True
        status = {"BYE": 200, "OPTIONS": 200}.get(method, 481)
        self.b2bua._reply(ev, status)
        if method == "BYE":
            del self.detached[dialog_id]
            transfer.dialog.terminate()
            self._relatch(transfer)
        return True

    # ------------------------------------------------------------------ cleanup

    def _drop_forks(self, transfer: Transfer) -> None:
        for tx in transfer.forks:
            self.by_fork.pop(tx, None)

    def forget(self, call: Call) -> None:
        """The call ended: stop ringing its transfer target."""
        transfer = self.active.pop(call.label, None)
        if transfer is None:
            return
        if transfer.referrer_gone:
            self.detached.pop(transfer.dialog.id, None)
        if transfer.other is not None:  # attended: its re-INVITE's answer will find it done
            self.active.pop(transfer.other[0].label, None)
            self.active.pop(transfer.call.label, None)
            self._notify(transfer, 487, "Request Terminated", final=True)
        transfer.state = TransferState.DONE
        for fork in transfer.pending():
            self.b2bua.sip.cancel(fork.tx)
        self._drop_forks(transfer)
