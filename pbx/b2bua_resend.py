"""Re-sending the B2BUA's 2xx to an INVITE until the ACK comes (RFC 3261 §13.3.1.4).

Over UDP the UAS core, not the transaction, retransmits a 2xx: T1, doubling to
T2, until the ACK arrives or 64*T1 pass, when the call is ended. The schedule
is `pbx.sip.dialog.AnswerRetransmitter` (sans-IO); this module only arms the
loop timers for it. The ACK handler calls `call.retransmitters[seq].ack_received()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pbx.call import Call, Peer
from pbx.net.transport import SipEndpoint
from pbx.sip.dialog import AnswerRetransmitter, Dialog, RetransmitAction
from pbx.sip.message import Response
from pbx.sip.timers import TimerConfig
from pbx.sip.transport import NextHop


class AnswerResender:
    """Arms one loop timer at a time per unacknowledged 2xx; the handles live in `call.timers`."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        timers: TimerConfig,
        on_give_up: Callable[[Call, Dialog], None],
    ) -> None:
        self.sip = endpoint
        self.timers = timers
        self.on_give_up = on_give_up

    def start(self, call: Call, dialog: Dialog, response: Response, peer: Peer) -> None:
        if peer.transport != "UDP":
            return  # reliable transports carry the 2xx once (13.3.1.4)
        retransmitter = AnswerRetransmitter(self.sip.now(), t1=self.timers.t1, t2=self.timers.t2)
        call.retransmitters[response.cseq.seq] = (retransmitter, response)
        self._arm(call, dialog, response.cseq.seq, peer)

    def _arm(self, call: Call, dialog: Dialog, seq: int, peer: Peer) -> None:
        entry = call.retransmitters.get(seq)
        if entry is None or call.ended:
            return
        retransmitter, response = entry
        deadline = retransmitter.next_deadline()
        if deadline is None:
            call.retransmitters.pop(seq, None)
            return

        def fire() -> None:
            action = retransmitter.on_timer(self.sip.now())
            if action is RetransmitAction.RETRANSMIT:
                self.sip.send_stateless(response, NextHop(*peer.destination, peer.transport))
            elif action is RetransmitAction.GIVE_UP:
                self.on_give_up(call, dialog)
                return
            self._arm(call, dialog, seq, peer)

        call.timers.append(asyncio.get_running_loop().call_at(deadline, fire))
