"""In-dialog OPTIONS to both phones of every connected call (`--dialog-ping SECONDS`).

Why: the media timeout cannot see a call on hold (no media is expected), and session timers
only run when a phone asks for them. A phone that lost power with a call on hold therefore
keeps the call, and its trunk slot, for good. OpenSIPS's dialog module solves this by pinging
both ends of each dialog with OPTIONS; so does DeskPBX, off by default as there.

Every `interval` seconds each leg of a connected call without a ping in flight gets an
OPTIONS inside its dialog (RFC 3261 11: any answer, even 405 or 501, shows the phone holds
the dialog). An answer of 481 (the phone knows no such call) or none at all (Timer F, 32 s)
ends the call on both legs as the system, its CDR written as for any other hangup.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pbx.call import CallState, Side
from pbx.periodic import Periodic
from pbx.sip.errors import LocalProtocolError
from pbx.sip.message import Response
from pbx.sip.transaction import ClientKey
from pbx.sip.transport import NextHop
from pbx.store import HangupSide

if TYPE_CHECKING:
    from pbx.b2bua import B2bua
    from pbx.call import Call

log = logging.getLogger(__name__)


class DialogPing:
    """Pings the legs of connected calls; ends the calls a phone no longer holds."""

    def __init__(self, b2bua: B2bua, interval: float) -> None:
        self.b2bua = b2bua
        self.interval = interval
        """Seconds between pings of a leg; 0 turns them off."""
        self.pending: dict[ClientKey, tuple[str, Side]] = {}  # our OPTIONS -> (call, leg)
        self.rounds = Periodic(interval, self.ping, "dialog ping")
        self.sent = 0
        """Pings sent since start."""
        self.ended = 0
        """Calls ended because a phone answered 481 or nothing, since start."""

    def start(self) -> None:
        self.rounds.start()

    def stop(self) -> None:
        self.rounds.stop()

    def ping(self) -> int:
        """OPTIONS to every leg of a connected call that has none in flight; how many went."""
        b2bua, sent = self.b2bua, 0
        waiting = set(self.pending.values())
        for call in list(b2bua.calls.values()):
            if call.state is not CallState.CONNECTED:
                continue
            for side in Side:
                dialog, peer = call.dialog(side), call.peer(side)
                if dialog is None or peer is None or (call.label, side) in waiting:
                    continue
                try:
                    options = dialog.create_request("OPTIONS")
                except LocalProtocolError:  # the dialog is ending
                    continue
                tx = b2bua.sip.send_request(options, NextHop(*peer.destination, peer.transport))
                self.pending[tx] = (call.label, side)
                sent += 1
        self.sent += sent
        return sent

    def on_response(self, tx: ClientKey, response: Response | None) -> None:
        """The answer to one of our pings (None: Timer F fired, no answer at all)."""
        if response is not None and response.status < 200:
            return
        label, side = self.pending.pop(tx)
        if response is not None and response.status != 481:
            return  # any other answer, 405 and 501 included, shows the phone holds the call
        call = self.b2bua.calls.get(label)
        if call is None or call.ended:
            return
        what = "no answer" if response is None else "481"
        log.warning("[%s] the %s answered our in-dialog OPTIONS with %s: hanging up",
                    label, side.value, what)  # fmt: skip
        self.ended += 1
        self.b2bua._hangup(call, side, HangupSide.SYSTEM)

    def forget(self, call: Call) -> None:
        for tx in [tx for tx, (label, _) in self.pending.items() if label == call.label]:
            del self.pending[tx]
