"""The B2BUA's trunk side: calls out through carriers and calls in from them.

Outbound: an INVITE from an extension to a number that is no extension is
planned by the dialplan (pbx.routing via pbx.outbound.OutboundDialer): the
caller's permission class and the routes give 403/404 without a call (and
without a CDR), or a list of trunks. Each trunk is tried in turn as leg B's
only fork: a 401/407 is answered once with the trunk's credentials (RFC 3261
22.2-22.3), a timeout, 408 or 5xx fails over to the next trunk (RFC 3261
16.7 spirit), any other final answer goes back to the caller. A trunk's
concurrent calls are counted by the cursor's slot, freed when the call ends;
"503 Service Full/Down/No Resource" when no trunk has room lands in the CDR.

A server that says nothing at all, not even 100 Trying (which RFC 3261 17.2.1
has it send within 200 ms), is passed over after SILENT_SERVER_S seconds
when there is another server or trunk to try, as OpenSIPS does with its
5-second fr_timeout, instead of after Timer B's 32 s: the caller would hang
up first. Its INVITE is CANCELled should it wake up (9.1).

Inbound: pbx.inbound.InboundGate recognises a carrier by source address or
by the registration contact user (RFC 3261 10.2.1), before any digest check;
an unknown, unauthenticated source calling a number that is no extension
gets 403 and no dialog. The DID then rings an extension, or a ring group all
at once or member by member (`waves`, each for the group's ring timeout).
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING

from pbx.call import ALLOW, Call, Fork, Peer, Side, disposition_for
from pbx.inbound import Admission, InboundGate
from pbx.outbound import Action, AttemptCursor, CallContext, OutboundDialer
from pbx.routing import Refusal, TrunkAttempt
from pbx.sip.events import RequestReceived
from pbx.sip.message import Request, Response
from pbx.sip.transaction import ClientKey, TransactionKey
from pbx.sip.transport import NextHop
from pbx.store import Binding, Disposition, HangupSide, RecordPolicy
from pbx.store.trunks import Trunk

if TYPE_CHECKING:
    from pbx.b2bua import B2bua
    from pbx.trunks import TrunkManager

log = logging.getLogger(__name__)

SILENT_SERVER_S = 5.0
"""Seconds without any response from a trunk's server before the call moves on."""


class TrunkCalls:
    """Outbound routing, carrier forks and inbound DIDs, keyed by call label and fork tx."""

    def __init__(self, b2bua: B2bua, trunks: TrunkManager | None) -> None:
        self.b2bua = b2bua
        self.dialer = OutboundDialer(b2bua.store)
        owner = trunks.trunk_for_contact_user if trunks is not None else _no_owner
        locator = b2bua.locator
        self.gate = InboundGate(b2bua.store, contact_owner=owner, resolver=locator.addresses,
                                generation=lambda: locator.generation)  # fmt: skip
        self.cursors: dict[str, AttemptCursor] = {}
        # fork -> (trunk attempt, the server it went to, the servers left to try)
        self.forks: dict[ClientKey, tuple[TrunkAttempt, NextHop, tuple[NextHop, ...]]] = {}
        self.waves: dict[str, tuple[list[list[Binding]], float]] = {}
        self.silent_after = SILENT_SERVER_S
        #: Forks passed over for silence: what they say later changes nothing.
        self.passed_over: set[ClientKey] = set()

    # ------------------------------------------------------------------ admission

    def admit(self, ev: RequestReceived) -> bool:
        """Before authentication: refuse unknown sources, take carriers' calls. True if done."""
        b = self.b2bua
        admitted = self.gate.admit(ev.request, ev.source)
        if admitted.admission is Admission.REFUSE:
            refusal = admitted.refusal
            b._reply(ev, refusal.status if refusal else 403, refusal.reason if refusal else None)
            return True
        if admitted.trunk is not None:
            self._inbound(ev, admitted.trunk)
            return True
        return False

    # ------------------------------------------------------------------ outbound

    def outbound(self, ev: RequestReceived, caller: str, digits: str) -> None:
        """A number that is no extension: an outbound route picks the trunks (pbx.routing)."""
        b = self.b2bua
        plan = self.dialer.plan(caller, digits)
        if isinstance(plan, Refusal) and plan.status in (403, 404):
            b._reply(ev, plan.status, plan.reason)
            return
        call = b._new_call(ev, caller, digits)
        if call is None:
            return
        if isinstance(plan, Refusal):  # 503 Service Full / Down / No Resource, in the CDR
            b._fail(call, plan.status, plan.reason, Disposition.FAILED)
            return
        log.info("[%s] %s -> %s via route %s", call.label, caller, digits, plan.route)
        call.route_record_policy = self.route_record_policy(plan.route)
        self.cursors[call.label] = self.dialer.attempts(plan)
        b._start(call, [])

    def route_record_policy(self, name: str) -> RecordPolicy | None:
        """The recording policy of the outbound route a call took (pbx.recording combines it)."""
        route = next((r for r in self.b2bua.store.list_routes() if r.name == name), None)
        return route.record_policy if route is not None else None

    def routable(self, caller: str, digits: str) -> bool:
        """Whether `digits` has an outbound route the extension `caller` may use (no call)."""
        return not isinstance(self.dialer.plan(caller, digits), Refusal)

    def place(self, call: Call) -> bool:
        """Leg B of a call already up on leg A (click-to-call) through the routes; False if
        there is none. The trunks are tried as for any outbound call."""
        plan = self.dialer.plan(call.caller, call.callee)
        if isinstance(plan, Refusal):
            return False
        self.cursors[call.label] = self.dialer.attempts(plan)
        self.next_trunk(call)
        return True

    def next_trunk(self, call: Call) -> None:
        """Send the INVITE to the next trunk with room (pbx.outbound), or fail the call."""
        b = self.b2bua
        attempt = self.cursors[call.label].next()
        if isinstance(attempt, Refusal):
            b._fail(call, attempt.status, attempt.reason, Disposition.FAILED)
            return
        located = partial(self._dial, call, attempt)
        b.locator.when_located(OutboundDialer.next_hop(attempt.trunk), located)

    def _dial(self, call: Call, attempt: TrunkAttempt, targets: list[NextHop]) -> None:
        """The INVITE to the first of the trunk's servers (pbx.net.dns), or the next trunk."""
        b = self.b2bua
        if call.ended or call.label not in self.cursors:  # ended while DNS answered
            return
        if not targets:
            log.info("[%s] trunk %s: %s has no address: next trunk", call.label,
                     attempt.trunk.name, OutboundDialer.next_hop(attempt.trunk).host)  # fmt: skip
            self.next_trunk(call)
            return
        hop, rest = targets[0], tuple(targets[1:])
        peer = b._peer(hop.address, hop.transport)
        a = call.a_invite
        context = CallContext(
            call_id=f"{call.label}-{call.forks_sent}@deskpbx",
            from_tag=call.a_tag,
            local=peer.local,
            caller=call.caller,
            sdp=call.offer_towards(Side.B, call.a_offer, peer.media_host),
            display="" if call.originated else (a.from_.display or ""),
            x_headers=tuple(call.x_headers.items()),
            max_forwards=max(0, (70 if a.max_forwards is None else a.max_forwards) - 1),
            user_agent=b.config.user_agent,
            allow=ALLOW,
        )
        call.forks_sent += 1
        self._send(call, attempt, self.dialer.build_invite(attempt, context), peer, hop, rest)

    def _send(
        self,
        call: Call,
        attempt: TrunkAttempt,
        invite: Request,
        peer: Peer,
        hop: NextHop,
        rest: tuple[NextHop, ...] = (),
    ) -> None:
        b = self.b2bua
        tx = b.sip.send_request(invite, hop)
        binding = Binding(attempt.trunk.name, str(invite.uri), hop.host, hop.port,
                          hop.transport, 0.0)  # fmt: skip
        call.forks[tx] = Fork(binding, invite, tx, peer)
        b._by_fork[tx] = call
        self.forks[tx] = (attempt, hop, rest)
        loop = asyncio.get_running_loop()
        call.timers.append(loop.call_later(self.silent_after, self._silent, call, tx))

    def _silent(self, call: Call, tx: ClientKey) -> None:
        """No word from the server `tx` went to: the next server or trunk, when there is one."""
        fork, entry = call.forks.get(tx), self.forks.get(tx)
        if fork is None or entry is None or fork.heard or fork.final is not None:
            return
        if call.ended or call.b_dialog is not None:
            return
        attempt, hop, rest = entry
        cursor = self.cursors.get(call.label)
        if not rest and (cursor is None or not cursor.remaining):
            return  # nowhere else to go: Timer B has the last word
        fork.timed_out = True
        self.passed_over.add(tx)
        self.b2bua.sip.cancel(tx)  # sent if it ever answers provisionally (9.1)
        self._server_failed(call, attempt, hop, rest, f"silent for {self.silent_after:g} s")

    def _server_failed(
        self, call: Call, attempt: TrunkAttempt, hop: NextHop, rest: tuple[NextHop, ...], why: str
    ) -> None:
        """The server at `hop` failed the call: its next server, else the next trunk."""
        self.b2bua.locator.failed(hop)
        log.info("[%s] trunk %s: %s:%d failed (%s): %s", call.label, attempt.trunk.name,
                 hop.host, hop.port, why, "its next server" if rest else "next trunk")  # fmt: skip
        if rest:
            self._dial(call, attempt, list(rest))
        else:
            self.next_trunk(call)

    def owns(self, tx: TransactionKey | None) -> bool:
        return tx in self.forks

    def failed(self, call: Call, fork: Fork, response: Response | None) -> None:
        """A trunk said no or nothing: answer its challenge, fail over, or give up."""
        attempt, hop, rest = self.forks[fork.tx]
        if fork.tx in self.passed_over:
            self.passed_over.discard(fork.tx)  # its 487, or Timer B: the call has moved on
            return
        if call.ended or call.b_dialog is not None:
            return
        step = self.dialer.after_failure(response, fork.invite, attempt.trunk)
        if step.action is Action.RETRY and step.request is not None:
            self._send(call, attempt, step.request, fork.peer, hop, rest)
        elif server_failed(response):  # RFC 3263 §4.3: the next server, then the next trunk
            why = "timeout" if response is None else str(response.status)
            self._server_failed(call, attempt, hop, rest, why)
        elif step.action is Action.FAILOVER or response is None:
            log.info("[%s] trunk %s failed (%s): next trunk", call.label, attempt.trunk.name,
                     "timeout" if response is None else response.status)  # fmt: skip
            self.next_trunk(call)
        else:
            call.hangup_side = HangupSide.CALLEE
            self.b2bua._fail(
                call, response.status, response.reason, disposition_for(response.status)
            )

    # ------------------------------------------------------------------ inbound

    def _inbound(self, ev: RequestReceived, trunk: Trunk) -> None:
        """A call from a carrier: its DID rings an extension or a ring group."""
        b = self.b2bua
        target = self.gate.route(trunk, ev.request)
        if isinstance(target, Refusal):
            b._reply(ev, target.status, target.reason)
            return
        waves = [w for w in (b._bindings(members) for members in target.waves) if w]
        if not waves:
            b._reply(ev, 480, "Temporarily Unavailable (not registered)")
            return
        caller = getattr(ev.request.from_.uri, "user", None) or "anonymous"
        call = b._new_call(ev, caller, target.did)
        if call is None:
            return
        if len(waves) > 1:
            self.waves[call.label] = (waves[1:], target.ring_timeout)
        log.info("[%s] trunk %s: %s -> DID %s", call.label, trunk.name, caller, target.did)
        b._start(call, waves[0])

    def connected(self, call: Call) -> None:
        """Leg A's media is set: send the first trunk INVITE, arm the next ring-group wave."""
        if call.label in self.cursors:
            self.next_trunk(call)
        entry = self.waves.get(call.label)
        if entry is not None:
            loop = asyncio.get_running_loop()
            call.timers.append(loop.call_later(entry[1], self.next_wave, call))

    def next_wave(self, call: Call) -> bool:
        """Ring the next members of an in-order ring group (the current ones are cancelled);
        False when the call has no more waves."""
        entry = self.waves.get(call.label)
        if entry is None or call.ended or call.b_dialog is not None:
            return False
        waves, timeout = entry
        for fork in call.pending_forks():
            self.b2bua.sip.cancel(fork.tx)
            fork.timed_out = True
        wave = waves.pop(0)
        if not waves:
            del self.waves[call.label]
        else:
            loop = asyncio.get_running_loop()
            call.timers.append(loop.call_later(timeout, self.next_wave, call))
        for binding in wave:
            self.b2bua._fork(call, binding)
        return True

    def release(self, call: Call) -> None:
        """Leg B is gone (the call ended or is transferred): free its trunk slot and forks."""
        for tx in call.forks:
            self.forks.pop(tx, None)
            self.passed_over.discard(tx)
        cursor = self.cursors.pop(call.label, None)
        if cursor is not None:
            cursor.release()

    def forget(self, call: Call) -> None:
        """The call ended: free its trunk slot and its table entries."""
        self.release(call)
        self.waves.pop(call.label, None)


def server_failed(response: Response | None) -> bool:
    """A timeout, transport error or 503: the server, not the callee, failed (RFC 3263 §4.3)."""
    return response is None or response.status == 503


def _no_owner(user: str) -> str | None:
    return None
