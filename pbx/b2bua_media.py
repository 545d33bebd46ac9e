"""Calls whose media stopped: ended after `media_timeout` seconds without a packet from a phone.

Why: a phone that loses power or its network in the middle of a call sends no BYE. The other
party usually hangs up, but when it does not (a carrier's queue, an answering machine, both
phones gone in an office power cut) the call stays up for good: it holds a trunk's call slot,
shows in the active calls and ends, if ever, with a CDR hours long. Asterisk (`rtptimeout`),
FreeSWITCH (`media_timeout`) and 3CX end such calls; so does DeskPBX.

The relay counts what each phone sends (RTP and RTCP); every `interval` seconds the watch
notes each connected call's counts, and a phone whose count has not moved for `timeout`
seconds is taken as gone: the call is hung up on both legs (hangup side "system"), its CDR
written as for any other hangup. A call on hold in either direction (RFC 3264 8.4: a held
phone may send nothing at all) is left alone, and its clock starts again when it resumes.
RTCP counts too, so a phone with silence suppression that still reports every few seconds
(RFC 3550 6.2) is alive.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pbx.call import Call, CallState, Side
from pbx.periodic import Periodic
from pbx.sip.sdp import Direction
from pbx.store import HangupSide

if TYPE_CHECKING:
    from pbx.b2bua import B2bua

log = logging.getLogger(__name__)

CHECK_INTERVAL = 5.0
"""Seconds between looks at the calls' counters: a dead call ends within timeout + this."""


class MediaWatch:
    """Ends connected calls one of whose phones has sent nothing for `timeout` seconds."""

    def __init__(self, b2bua: B2bua, timeout: float, interval: float = CHECK_INTERVAL) -> None:
        self.b2bua = b2bua
        self.timeout = timeout
        """Seconds of silence from a phone that end its call; 0 turns the watch off."""
        self.interval = min(interval, timeout / 2) if timeout > 0 else interval
        #: (call label, side) -> (the phone's packet count, when it last moved; loop time).
        self._seen: dict[tuple[str, Side], tuple[int, float]] = {}
        self.looks = Periodic(
            self.interval if timeout > 0 else 0.0,
            lambda: self.check(asyncio.get_running_loop().time()),
            "media watch",
        )
        self.ended = 0
        """Calls ended for silence since start (status and metrics)."""

    def start(self) -> None:
        self.looks.start()

    def stop(self) -> None:
        self.looks.stop()

    def check(self, now: float) -> list[Call]:
        """Look at every call once (`now`: monotonic seconds); the calls it ended."""
        seen, dead = self._seen, []
        live: set[tuple[str, Side]] = set()
        for call in list(self.b2bua.calls.values()):
            if call.state is not CallState.CONNECTED or call.relay is None or _held(call):
                continue
            for side in Side:
                stats = call.relay.stats(side.leg)
                count = stats.packets_in + stats.rtcp_packets_in
                key = (call.label, side)
                live.add(key)
                last = seen.get(key)
                if last is None or last[0] != count:
                    seen[key] = (count, now)
                elif now - last[1] >= self.timeout:
                    dead.append((call, side))
                    break
        for key in [key for key in seen if key not in live]:
            del seen[key]  # ended, on hold or not connected: its clock starts afresh
        for call, side in dead:
            log.warning("[%s] no media from the %s for %.0f s: hanging up", call.label,
                        side.value, self.timeout)  # fmt: skip
            self.ended += 1
            self.b2bua._hangup(call, side, HangupSide.SYSTEM)
        return [call for call, _ in dead]


def _held(call: Call) -> bool:
    """Either phone's latest SDP holds the audio (sendonly, recvonly or inactive)."""
    for sdp in call.last_sdp.values():
        for media in sdp.media:
            if media.kind == "audio" and media.port:
                if sdp.direction_for(media) is not Direction.SENDRECV:
                    return True
    return False
