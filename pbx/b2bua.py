"""The B2BUA: calls between extensions, each bridged through the RTP relay.

Theory of operation
-------------------
An INVITE from an extension (authenticated with a 407 challenge) becomes a
`Call`. Its leg A is the caller's dialog, where we are the UAS; towards the
callee we are a UAC and send one INVITE per registered contact at once
(forking). Provisional answers are passed back (180 once, 183 with SDP as
early media); the first 2xx wins: it is ACKed, the other forks are CANCELled
and the caller gets our 200. A late second 2xx is ACKed and ended with BYE.
When every fork fails the caller gets the most telling answer (busy first);
when nobody answers in time, 480.

Both legs' SDP is rewritten to the relay's ports, so the phones send RTP to
the PBX and the relay latches onto where packets really come from. Requests
inside a dialog (BYE, re-INVITE for hold/resume, UPDATE, INFO for DTMF) are
passed to the other leg; the answer comes back to the leg that asked, with
SDP rewritten again.

Requests to a phone go to the flow it used (where its REGISTER or INVITE came
from), never blindly to the Contact, so phones behind NAT are reached. When a
call ends, everything it held (relay ports, timers, table entries) is freed
and one CDR row is written. `aclose()` ends calls in progress the same way.

Collaborators, one concern each: in-dialog requests (pbx.b2bua_forward),
trunks: numbers that are no extension go out through pbx.outbound's
OutboundDialer and carriers' calls come in by DID (pbx.b2bua_trunks), the HTTP
API's click-to-call, hangup, transfer and DTMF (pbx.b2bua_control), and the
recording manager (pbx.recording), told when a call is answered and ended so
the CDR links its file.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING

from pbx.admission import CallAdmission, Refusal
from pbx.auth_ban import AuthBans
from pbx.b2bua_auth import CallerAuth
from pbx.b2bua_control import CallControl
from pbx.b2bua_forward import Forwarder
from pbx.b2bua_media import MediaWatch
from pbx.b2bua_ping import DialogPing
from pbx.b2bua_refer import ReferHandler
from pbx.b2bua_resend import AnswerResender
from pbx.b2bua_session import REFRESHES, SessionTimers
from pbx.b2bua_trunks import TrunkCalls
from pbx.call import (
    ALLOW,
    Call,
    CallState,
    Fork,
    Peer,
    Side,
    best_final,
    disposition_for,
    fork_invite,
    is_x_header,
    media_stats,
    sdp_of,
)
from pbx.config import PbxConfig
from pbx.media.relay import Leg, Relay, RelaySession
from pbx.net.dns import Locator
from pbx.net.local_address import LocalAddresses, family_of
from pbx.net.transport import SipEndpoint
from pbx.sip.dialog import Dialog, DialogId
from pbx.sip.digest_server import DigestServer
from pbx.sip.entropy import token_hex
from pbx.sip.errors import LocalProtocolError, ParseError
from pbx.sip.events import RequestReceived, ResponseReceived
from pbx.sip.message import Request, Response
from pbx.sip.sdp import SessionDescription
from pbx.sip.transaction import COMPLETED_ELSEWHERE, ClientKey, TransactionKey
from pbx.sip.transport import NextHop
from pbx.sip.uri import SipUri
from pbx.store import Binding, Disposition, HangupSide, Store

if TYPE_CHECKING:
    from pbx.recording import RecordingManager
    from pbx.trunks import TrunkManager

log = logging.getLogger(__name__)

SDP = "application/sdp"
DIALOG_ONLY = frozenset({"BYE", "INFO", "UPDATE"})
REFUSAL_LOG_INTERVAL = 10.0  # seconds between warnings about calls refused at a limit
PEER_CACHE_SIZE = 4096  # flows whose Peer is kept; a scan of many sources cannot grow it further
_is_x_header = is_x_header  # its former home's name


def _has_audio(call: Call) -> bool:
    """The caller offered an active audio stream (RFC 3264 6: port 0 declines one)."""
    return any(m.kind == "audio" and m.port for m in call.a_offer.media)


class B2bua:
    """All calls of the PBX. The server feeds it SIP events; it answers through the endpoint."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        store: Store,
        auth: DigestServer,
        relay: Relay,
        faces: LocalAddresses,
        config: PbxConfig,
        *,
        wall: Callable[[], float] = time.time,
        on_call_ended: Callable[[Call], None] | None = None,
        recordings: RecordingManager | None = None,
        trunks: TrunkManager | None = None,
        bans: AuthBans | None = None,
        locator: Locator | None = None,
    ) -> None:
        self.sip = endpoint
        self.store = store
        #: Where trunks given by name are, from DNS (SRV too), looked up off the loop's path.
        self.locator = locator if locator is not None else Locator()
        self.caller_auth = CallerAuth(auth, store, bans)
        self.relay = relay
        self.faces = faces
        self.config = config
        self.wall = wall
        self.on_call_ended = on_call_ended
        #: Attaches recorders on answer and finishes them before the CDR (pbx.recording).
        self.recordings = recordings
        #: Per-leg loss, jitter, RTT and MOS for the CDR (relay quality=True); extra
        #: "call_quality=off" saves the per-packet accounting.
        self.quality = config.extra.get("call_quality", "on").lower() != "off"
        self.resender = AnswerResender(endpoint, config.timers, self._no_ack)
        #: Told of RINGING, EARLY_MEDIA and CONNECTED (pbx.api.events.CallEventSource).
        self.on_call_state: Callable[[Call], None] | None = None
        self.accepting = True
        #: --max-calls and --max-call-rate: a new call past either gets 503 (pbx.admission).
        self.admission = CallAdmission(config.max_calls, config.max_call_rate)
        self._refusals_logged = -REFUSAL_LOG_INTERVAL
        self.calls: dict[str, Call] = {}
        self._by_a_tx: dict[TransactionKey, Call] = {}
        self._by_fork: dict[ClientKey, Call] = {}
        self._by_dialog: dict[DialogId, tuple[Call, Side]] = {}
        self._peers: dict[tuple[tuple[str, int], str], Peer] = {}
        self.forwarder = Forwarder(self)
        #: Click-to-call, hang up, transfer, DTMF and recording for the HTTP API.
        self.control = CallControl(self)
        #: Transfers the phones ask for with REFER (RFC 3515).
        self.refer = ReferHandler(self)
        #: Outbound routes through trunks (OutboundDialer) and carriers' inbound calls.
        self.trunking = TrunkCalls(self, trunks)
        #: Hangs up calls a phone stopped sending media to (`--media-timeout`); started by
        #: the server once the loop runs.
        self.media_watch = MediaWatch(self, config.media_timeout)
        #: RFC 4028 session timers the phones and carriers ask for; started like the watch.
        self.session_timers = SessionTimers(self, config.session_min_se)
        #: In-dialog OPTIONS to both phones of connected calls (`--dialog-ping`).
        self.dialog_ping = DialogPing(self, config.dialog_ping)
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ bookkeeping

    @property
    def active_calls(self) -> int:
        return len(self.calls)

    def table_sizes(self) -> dict[str, int]:
        """How many entries each internal table holds (for leak checks)."""
        return {
            "calls": len(self.calls),
            "by_a_tx": len(self._by_a_tx),
            "by_fork": len(self._by_fork) + len(self.control.by_a_fork),  # both legs' INVITEs
            "by_dialog": len(self._by_dialog),
            "forwarded": len(self.forwarder.pending)
            + self.refer.table_size()
            + len(self.dialog_ping.pending),
            "tasks": len(self._tasks),
            "session_timers": self.session_timers.table_size(),
        }

    def admit(self) -> Refusal | None:
        """None when one more call may start now, else the 503 it gets; refusals are logged
        at most once per REFUSAL_LOG_INTERVAL seconds, with the counts so far."""
        now = self.sip.now()
        refusal = self.admission.refuse(len(self.calls), now)
        if refusal is not None and now - self._refusals_logged >= REFUSAL_LOG_INTERVAL:
            self._refusals_logged = now
            stats = self.admission.stats()
            log.warning(
                "new calls refused (%s): %d in progress; %d refused at --max-calls %d, "
                "%d at --max-call-rate %g so far", refusal.reason, len(self.calls),
                stats["refused_full"], self.admission.max_calls, stats["refused_rate"],
                self.admission.max_call_rate,
            )  # fmt: skip
        return refusal

    def _peer(self, destination: tuple[str, int], transport: str) -> Peer:
        """Where a phone is reached and which of our faces it sees, kept per flow: the face
        only depends on the destination and the (fixed) listeners, and phones call again
        and again from the same flow. Peers are never mutated, so calls may share one."""
        key = (destination, transport)
        peer = self._peers.get(key)
        if peer is None:
            face = self.faces.face(destination, transport)
            peer = Peer(destination, transport.upper(), face.endpoint(), face.host)
            if len(self._peers) >= PEER_CACHE_SIZE:
                self._peers.clear()
            self._peers[key] = peer
        return peer

    def _respond(self, tx: TransactionKey | None, response: Response) -> None:
        if tx is not None:
            self.sip.send_response(tx, response)

    def _reply(
        self,
        ev: RequestReceived,
        status: int,
        reason: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """Answer a request; a final answer outside a dialog gets a To tag (8.2.6.2)."""
        tag = token_hex(6) if status > 100 and ev.request.to_tag is None else None
        response = ev.request.make_response(status, reason, to_tag=tag, headers=headers or ())
        self._respond(ev.tx, response)

    # ------------------------------------------------------------------ requests

    def on_request(self, ev: RequestReceived) -> None:
        request = ev.request
        try:
            if request.method == "CANCEL":
                self._on_cancel(ev)
            elif request.to_tag is not None:
                self.forwarder.on_request(ev)
            elif request.method == "INVITE":
                self._on_invite(ev)
            elif request.method != "ACK":
                # Dialog-only methods without a To tag match no dialog (RFC 3261 15.1.2).
                self._reply(ev, 481 if request.method in DIALOG_ONLY else 501)
        except ParseError as exc:
            if request.method != "ACK":
                self._reply(ev, exc.status, exc.reason)
        except Exception:  # one bad request must not leave its transaction unanswered
            log.exception("failed on %s %s", request.method, request.call_id)
            if request.method != "ACK":
                try:
                    self._reply(ev, 500, "Server Internal Error")
                except Exception:  # already answered: the transaction refuses a second one
                    pass

    def _on_invite(self, ev: RequestReceived) -> None:
        request = ev.request
        if not self.accepting:
            self._reply(ev, 503, "Shutting Down")
            return
        if self.trunking.admit(ev):  # a carrier's call, or a stranger's refused (403)
            return
        caller = self.caller_auth.check(request, self.sip.now(), ev.source[0])
        if isinstance(caller, Response):
            self._respond(ev.tx, caller)
            return
        callee = request.uri.user if isinstance(request.uri, SipUri) else None
        extension = self.store.find_extension(callee) if callee else None
        if callee and extension is None:
            self.trunking.outbound(ev, caller, callee)  # the dialplan's outbound routes
            return
        if callee is None or extension is None or not extension.enabled:
            self._reply(ev, 404)
            return
        bindings = self._bindings([callee])
        if not bindings:
            self._reply(ev, 480, "Temporarily Unavailable (not registered)")
            return
        call = self._new_call(ev, caller, callee)
        if call is not None:
            log.info("[%s] %s -> %s (%d contacts)", call.label, caller, callee, len(bindings))
            self._start(call, bindings)

    def _new_call(self, ev: RequestReceived, caller: str, callee: str) -> Call | None:
        """A Call for this INVITE, or None after answering 503 (a call limit reached, see
        pbx.admission) or 488 (no SDP offer)."""
        request = ev.request
        refusal = self.admit()
        if refusal is not None:
            self._reply(ev, 503, refusal.reason, refusal.headers)
            return None
        if request.content_type != SDP or not request.body:
            self._reply(ev, 488, "SDP Offer Required")
            return None
        session_timer = self.session_timers.on_invite(ev)
        if session_timer is False:  # answered 422
            return None
        assert ev.tx is not None
        call = Call(
            label=token_hex(8),
            caller=caller,
            callee=callee,
            a_invite=request,
            a_tx=ev.tx,
            a_peer=self._peer(ev.source, ev.transport),
            a_tag=token_hex(6),
            a_offer=SessionDescription.parse(request.body),
            start=self.wall(),
            x_headers={name: value for name, value in request.headers if is_x_header(name)},
        )
        self.calls[call.label] = call
        self._by_a_tx[ev.tx] = call
        self.session_timers.offered(call, session_timer)
        return call

    def _bindings(self, numbers: list[str] | tuple[str, ...]) -> list[Binding]:
        """The reachable registered contacts of these extensions."""
        now = self.wall()
        return [b for n in numbers for b in self.store.active_bindings(now, n) if b.reachable]

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    def _start(self, call: Call, bindings: list[Binding]) -> None:
        """Bind the relay and fork the INVITE. With the relay's epoll sockets (the usual
        case) the ports are taken at once and the callee's INVITE leaves while the caller's
        is handled: no task, no extra loop turn per call. Otherwise a task awaits them."""
        if not _has_audio(call):
            self._fail(call, 488, "No Audio Stream", Disposition.FAILED)
            return
        try:
            session = self.relay.open_session_now(*self._legs(call), quality=self.quality)
        except OSError as exc:
            self._no_ports(call, exc)
            return
        if session is None:
            self._spawn(self._setup(call, bindings))
            return
        try:
            self._connected(call, session, bindings)
        except Exception:
            self._setup_failed(call)

    async def _setup(self, call: Call, bindings: list[Binding]) -> None:
        """The relay binds through asyncio transports: await the ports, then fork the
        INVITE; a failure here still ends the call (500)."""
        try:
            try:
                session = await self.relay.open_session(*self._legs(call), quality=self.quality)
            except OSError as exc:
                self._no_ports(call, exc)
                return
            if call.ended:  # cancelled (or the PBX stopped) while the ports were bound
                session.close()
                return
            self._connected(call, session, bindings)
        except Exception:
            self._setup_failed(call)

    @staticmethod
    def _legs(call: Call) -> tuple[str, int, int]:
        """The relay session's label and its legs' address families (A: that of the
        caller's media address; B: IPv4), for both ways of opening it."""
        return call.label, family_of(call.a_peer.media_host), socket.AF_INET

    def _setup_failed(self, call: Call) -> None:
        """A bug in call set-up ends the call with 500 and a CDR (called from an except)."""
        log.exception("[%s] call setup failed", call.label)
        self._fail(call, 500, "Server Internal Error", Disposition.FAILED)
        self._finish(call)

    def _no_ports(self, call: Call, exc: OSError) -> None:
        log.error("[%s] no RTP ports: %s", call.label, exc)
        self._fail(call, 503, "No Media Ports", Disposition.FAILED)

    def _connected(self, call: Call, session: RelaySession, bindings: list[Binding]) -> None:
        """The relay is bound: point leg A at the caller's media and ring every contact."""
        call.relay = session
        if not call.set_remote(Leg.A, call.a_offer):
            self._fail(call, 488, "Unusable Media Address", Disposition.FAILED)
            return
        self.trunking.connected(call)  # an outbound call's first trunk, a group's next wave
        for binding in bindings:
            self._fork(call, binding)
        loop = asyncio.get_running_loop()
        call.timers.append(loop.call_later(self.config.no_answer_timeout, self._no_answer, call))

    def _fork(self, call: Call, binding: Binding) -> None:
        assert call.relay is not None
        peer = self._peer((binding.source_host, binding.source_port), binding.transport)
        sdp = call.offer_towards(Side.B, call.a_offer, peer.media_host)
        invite = fork_invite(call, binding.contact, peer, sdp, self.config.user_agent)
        call.forks_sent += 1
        tx = self.sip.send_request(invite, NextHop(*peer.destination, peer.transport))
        call.forks[tx] = Fork(binding, invite, tx, peer)
        self._by_fork[tx] = call

    def _on_cancel(self, ev: RequestReceived) -> None:
        """RFC 3261 9.2: a CANCEL that matches a transaction of any method gets 200; only
        an INVITE still unanswered is ended (487). Nothing matched: 481."""
        target = self.sip.core.cancel_target(ev.tx, self.sip.now()) if ev.tx is not None else None
        if target is None:
            self._reply(ev, 481)
            return
        self._reply(ev, 200)
        if target.method != "INVITE":
            return
        call = self._by_a_tx.get(target)
        if call is None or call.answered or call.a_final_sent:
            return
        log.info("[%s] cancelled by the caller", call.label)
        call.hangup_side = HangupSide.CALLER
        call.cancel_reason = ev.request.headers.get("Reason")  # passed on (RFC 3326)
        self._fail(call, 487, "Request Terminated", Disposition.CANCELLED)

    def _no_answer(self, call: Call) -> None:
        if call.b_dialog is None and not call.ended:
            self._fail(call, 480, "No Answer", Disposition.NO_ANSWER)

    # ------------------------------------------------------------------ responses

    def on_response(self, ev: ResponseReceived) -> None:
        response = ev.response
        if self.session_timers.timers and response.cseq.method in REFRESHES:
            if 200 <= response.status < 300:
                self.session_timers.on_answer(response)
        # A client transaction belongs to one table only, and most responses answer a fork:
        # that table is asked first (each lookup hashes the transaction key again).
        call = self._by_fork.get(ev.tx) if ev.tx is not None else None
        if call is None:
            if ev.tx is not None and ev.tx in self.forwarder.pending:
                self.forwarder.on_response(ev.tx, response)
            elif ev.tx is not None and ev.tx in self.dialog_ping.pending:
                self.dialog_ping.on_response(ev.tx, response)
            elif not (self.control.on_response(ev) or self.refer.on_response(ev)):
                self.forwarder.ack_stray(response)
            return
        fork = call.forks[ev.tx]  # type: ignore[index]
        fork.heard = True
        status = response.status
        if status == 100:
            return
        outcome = call.b_dialogs.invite_response(fork.invite, response, fork.peer.local)
        if status < 200:
            self._on_provisional(call, fork, response)
        elif status < 300:
            assert outcome.dialog is not None
            self._on_answer(call, fork, response, outcome.dialog)
        else:
            fork.final = response
            if self.trunking.owns(ev.tx):  # a carrier: credentials, failover or its answer
                self.trunking.failed(call, fork, response)
                return
            self._fork_failed(call)

    def _on_provisional(self, call: Call, fork: Fork, response: Response) -> None:
        if call.ended or call.b_dialog is not None:
            return
        sdp = sdp_of(response)
        if sdp is not None and call.relay is not None:
            call.set_remote(Leg.B, sdp)  # leg A, when already up, hears the early media
            if call.a_waits:
                self._send_to_a(call, 183, response.reason, sdp)
                self._set_state(call, CallState.EARLY_MEDIA)
        elif response.status == 180 and call.state is CallState.DIALING and call.a_waits:
            self._send_to_a(call, 180, None, None)
            self._set_state(call, CallState.RINGING)

    def _on_answer(self, call: Call, fork: Fork, response: Response, dialog: Dialog) -> None:
        self._send_ack(dialog.ack_for(response), fork.peer)
        if dialog is call.b_dialog:  # a 2xx retransmitted (RFC 6026 7.2): the ACK was all
            return
        if call.ended or call.b_dialog is not None:
            self._send_bye(dialog, fork.peer)  # a second phone answered too late
            return
        sdp = sdp_of(response)
        call.b_dialog, call.b_peer = dialog, fork.peer
        self._by_dialog[dialog.id] = (call, Side.B)
        for other in call.pending_forks():
            if other is not fork:
                self.sip.cancel(other.tx, COMPLETED_ELSEWHERE)
        if sdp is not None:
            call.set_remote(Leg.B, sdp)
            call.last_sdp[Side.B] = sdp
            self.control.bridge_codecs(call, sdp)
        first = call.answer is None  # a transfer's new leg B keeps the call's answer time
        if first:
            call.answer = self.wall()
        call.sip_code, call.sip_reason = 200, "OK"
        self._cancel_timers(call)
        if call.a_waits:
            self._send_to_a(call, 200, None, sdp)
        call.rerouting = False
        self._set_state(call, CallState.CONNECTED)
        if first:
            self._notify(self._record, call)
        log.info("[%s] answered by %s", call.label, fork.binding.contact)

    def _record(self, call: Call) -> None:
        """Attach a recorder by policy (pbx.recording) once the call is connected."""
        if self.recordings is not None:
            self.recordings.on_call_answered(call, route=call.route_record_policy)

    def _fork_failed(self, call: Call) -> None:
        if call.ended or call.b_dialog is not None or call.pending_forks():
            return
        if self.trunking.next_wave(call):  # an in-order ring group: the next member rings
            return
        finals = [f.final for f in call.forks.values() if f.final is not None]
        best = best_final(finals)
        if best is None or best.status in (408, 487) or 500 <= best.status < 600:
            self._fail(call, 480, "Temporarily Unavailable", Disposition.NO_ANSWER)
        else:
            call.hangup_side = HangupSide.CALLEE  # the callee's phone turned the call down
            self._fail(call, best.status, best.reason, disposition_for(best.status))

    def on_timeout(self, tx: TransactionKey) -> None:
        """Timer B: a fork never got a final answer; a forwarded request likewise."""
        if isinstance(tx, ClientKey) and tx in self.forwarder.pending:
            self.forwarder.on_response(tx, None)
            return
        if isinstance(tx, ClientKey) and tx in self.dialog_ping.pending:
            self.dialog_ping.on_response(tx, None)
            return
        if self.control.on_timeout(tx) or self.refer.on_timeout(tx):
            return
        call = self._by_fork.get(tx)  # type: ignore[arg-type]
        if call is None:
            return
        call.forks[tx].timed_out = True  # type: ignore[index]
        if self.trunking.owns(tx):
            self.trunking.failed(call, call.forks[tx], None)  # type: ignore[index]
            return
        self._fork_failed(call)

    # ------------------------------------------------------------------ towards leg A

    def _send_to_a(
        self, call: Call, status: int, reason: str | None, sdp: SessionDescription | None
    ) -> None:
        response = call.a_invite.make_response(status, reason, to_tag=call.a_tag)
        response.headers.add("Contact", call.a_peer.local.contact)
        if status >= 200:
            response.headers.add("Allow", ALLOW)
        if sdp is not None and call.relay is not None:
            response.body = call.answer_towards(Side.A, sdp, call.a_offer, call.a_peer.media_host)
            response.headers.add("Content-Type", SDP)
        if call.a_dialog is None:
            call.a_dialog = Dialog.uas(call.a_invite, response, call.a_peer.local)
            self._by_dialog[call.a_dialog.id] = (call, Side.A)
        if 200 <= status < 300:
            self.session_timers.answering(call, response)
        call.a_dialog.response_sent(response)
        self.sip.send_response(call.a_tx, response)
        if status >= 200:
            call.a_final_sent = True
            self.resender.start(call, call.a_dialog, response, call.a_peer)

    def _no_ack(self, call: Call, dialog: Dialog) -> None:
        log.warning("[%s] no ACK for our 200: ending the call", call.label)
        self._hangup(call, Side.B if dialog is call.a_dialog else Side.A, HangupSide.SYSTEM)

    # ------------------------------------------------------------------ ending

    def _hangup(self, call: Call, from_side: Side, who: HangupSide) -> None:
        """End an answered call: BYE the other leg (and this one when the PBX hangs up)."""
        if call.ended:
            return
        call.hangup_side = who
        if call.rerouting:  # a transfer's new leg B still rings
            for fork in call.pending_forks():
                self.sip.cancel(fork.tx)
        targets = [from_side.other] if who is not HangupSide.SYSTEM else [Side.A, Side.B]
        for side in targets:
            dialog, peer = call.dialog(side), call.peer(side)
            if dialog is not None and peer is not None:
                self._send_bye(dialog, peer)
        call.disposition = Disposition.ANSWERED
        self._finish(call)

    def _fail(self, call: Call, status: int, reason: str, disposition: Disposition) -> None:
        """End an unanswered call: cancel the forks, give the caller `status`."""
        if call.ended:
            return
        if not call.a_waits:  # leg A is ours (click-to-call) or up (transfer): BYE it
            self.control.end_placed(call, status, reason, disposition)
            return
        if call.a_final_sent:
            return
        for fork in call.pending_forks():
            self.sip.cancel(fork.tx, call.cancel_reason)
        call.sip_code, call.sip_reason, call.disposition = status, reason, disposition
        response = call.a_invite.make_response(status, reason, to_tag=call.a_tag)
        if call.a_dialog is not None:
            call.a_dialog.response_sent(response)
        self.sip.send_response(call.a_tx, response)
        call.a_final_sent = True
        log.info("[%s] ended unanswered: %d %s", call.label, status, reason)
        self._finish(call)

    def _finish(self, call: Call) -> None:
        """Free everything the call holds and write its CDR, exactly once."""
        if call.ended:
            return
        call.state = CallState.ENDED
        call.end = self.wall()
        if call.disposition is None:
            call.disposition = Disposition.FAILED
        self._cancel_timers(call)
        call.retransmitters.clear()
        if self.recordings is not None:  # before the relay closes: the tap detaches cleanly
            try:
                call.recording = self.recordings.on_call_ended(call)
            except Exception:
                log.exception("[%s] could not finish the recording", call.label)
        if call.relay is not None:
            call.media_stats = media_stats(call)
            call.relay.close()
        self.calls.pop(call.label, None)
        self._by_a_tx.pop(call.a_tx, None)
        for tx in call.forks:
            self._by_fork.pop(tx, None)
        for dialog in (call.a_dialog, call.b_dialog):
            if dialog is not None:
                self._by_dialog.pop(dialog.id, None)
        self.forwarder.forget(call)
        self.control.forget(call)
        self.refer.forget(call)
        self.trunking.forget(call)
        self.session_timers.forget(call)
        self.dialog_ping.forget(call)
        try:
            # A recorded call's CDR is written at once: after a SIGKILL only a recording
            # without its CDR is recovered (server.recover_cdrs). Others wait for a batch.
            if call.recording is None:
                call.cdr_id = self.store.queue_cdr(call.to_cdr()).id
            else:
                call.cdr_id = self.store.add_cdr(call.to_cdr()).id
        except Exception:  # a CDR failure must not take the PBX down
            log.exception("[%s] could not write the CDR", call.label)
        self._notify(self.on_call_ended, call)

    def _set_state(self, call: Call, state: CallState) -> None:
        changed = call.state is not state
        call.state = state
        if changed:
            self._notify(self.on_call_state, call)

    @staticmethod
    def _notify(hook: Callable[[Call], None] | None, call: Call) -> None:
        """Run an observer's hook; its failure is logged and never breaks the call."""
        if hook is None:
            return
        try:
            hook(call)
        except Exception:
            log.exception("[%s] call observer failed", call.label)

    def _cancel_timers(self, call: Call) -> None:
        for handle in call.timers:
            handle.cancel()
        call.timers.clear()

    async def aclose(self) -> None:
        """Stop taking calls and end those in progress (BYE or final answer), writing CDRs."""
        self.accepting = False
        self.media_watch.stop()
        self.session_timers.stop()
        self.dialog_ping.stop()
        for call in list(self.calls.values()):
            if call.answered:
                self._hangup(call, Side.A, HangupSide.SYSTEM)
            else:
                self._fail(call, 503, "Service Unavailable (PBX stopping)", Disposition.FAILED)
                self._finish(call)
        for task in list(self._tasks):
            task.cancel()

    # ------------------------------------------------------------------ HTTP API (b2bua_control)

    def originate(
        self, from_ext: str, to_number: str, caller_id: str | None, x_headers: dict[str, str]
    ) -> str:
        return self.control.originate(from_ext, to_number, caller_id, x_headers)

    def hangup(self, label: str) -> None:
        self.control.hangup(label)

    def transfer(self, label: str, target: str) -> None:
        self.control.transfer(label, target)

    def send_dtmf(self, label: str, digits: str, duration_ms: int) -> None:
        self.control.send_dtmf(label, digits, duration_ms)

    def start_recording(self, label: str) -> object:
        return self.control.start_recording(label)

    def stop_recording(self, label: str) -> None:
        self.control.stop_recording(label)

    # ------------------------------------------------------------------ helpers

    def _send_ack(self, ack: Request, peer: Peer) -> None:
        self.sip.send_stateless(ack, NextHop(*peer.destination, peer.transport))

    def _send_bye(self, dialog: Dialog, peer: Peer) -> None:
        try:
            bye = dialog.bye(headers=[("User-Agent", self.config.user_agent)])
        except LocalProtocolError:
            return
        self.sip.send_request(bye, NextHop(*peer.destination, peer.transport))
