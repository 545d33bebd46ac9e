"""Per-leg media quality of a call: packets, loss, jitter, RTT and an estimated MOS for the CDR.

The relay forwards RTP and RTCP without terminating them, so the PBX learns
about each leg the way a passive monitor does (the approach of RFC 6792 §3,
monitoring without being an endpoint):

* From the RTP a phone sends (`rtp`): the RFC 3550 receiver statistics of
  Appendix A (`pbx.media.rtcp.SourceStats`): packets, cumulative loss from
  the extended sequence numbers, and the A.8 interarrival jitter, measured on
  the relay's arrival times. That is the quality of the phone -> PBX path.
* From the RTCP a phone sends (`rtcp`): its report blocks say what *it*
  receives from the PBX (fraction lost, jitter), the PBX -> phone path.
* The RTT of the relay <-> phone path without any clock agreement: when an
  SR from the phone on the other leg passes the relay, the relay notes its
  NTP middle word and the relay's arrival time; when this leg's phone
  answers with a report block whose LSR is that word, the round trip from
  the relay to this phone and back is arrival - noted - DLSR (RFC 3550
  §6.4.1, with the relay's own clock on both ends of the subtraction).

Nothing here reads a clock or touches a socket: arrival times come in from
the relay (its loop clock). `CallQuality.tap` has the relay's `Tap` shape
`(leg, datagram, arrival)`; `chain` runs it in front of the recorder's tap.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from pbx.media.quality import G711_PLC, Codec, estimate_mos
from pbx.media.rtcp import (
    ReceiverReport,
    ReportBlock,
    SenderReport,
    SourceStats,
    iter_packets,
)
from pbx.media.rtp import RtcpError

_FIXED = struct.Struct("!BBHII")
_SR_MEMORY = 8  # SRs remembered per leg for matching LSR (one every ~5 s, RFC 3550 §6.2)
# RTP clock rates of the static payload types a PBX meets (RFC 3551 §6, table 4)
STATIC_CLOCK_RATES = {0: 8000, 3: 8000, 4: 8000, 8: 8000, 9: 8000, 13: 8000, 18: 8000}

Tap = Callable[[Hashable, bytes, float], None]


@dataclass(slots=True)
class LegQuality:
    """What the PBX has measured about one leg (one phone) of a call.

    `event_types` are payload types whose packets count for loss but not for
    jitter (RFC 4733 telephone-event, negotiated dynamically in the SDP).
    """

    clock_rate: int = 8000
    event_types: frozenset[int] = frozenset({101})
    source: SourceStats | None = None
    previous_packets: int = 0  # counted under earlier SSRCs of this leg
    previous_lost: int = 0
    rtcp_packets: int = 0
    rtcp_errors: int = 0
    reported: ReportBlock | None = None  # the phone's latest block about what it receives
    rtts: list[float] = field(default_factory=list)
    _srs: OrderedDict[int, float] = field(default_factory=OrderedDict)

    def rtp(self, data: bytes, arrival: float) -> None:
        """Account one RTP datagram the phone sent (header only; the payload is not read)."""
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        _, second, seq, ts, ssrc = _FIXED.unpack_from(data)
        source = self.source
        if source is None or source.ssrc != ssrc:
            source = self._new_source(ssrc, second & 0x7F)
        source.received(seq, ts, arrival, timing=(second & 0x7F) not in self.event_types)

    def _new_source(self, ssrc: int, payload_type: int) -> SourceStats:
        """A new SSRC (RFC 3550 §8.2: a restarted phone, a transfer): keep the old totals."""
        if self.source is not None:
            self.previous_packets += self.source.packets
            self.previous_lost += max(0, self.source.lost)
        rate = STATIC_CLOCK_RATES.get(payload_type, self.clock_rate)
        # the relay already latched this phone's address, so no A.1 probation is needed
        self.source = SourceStats(ssrc=ssrc, clock_rate=rate, min_sequential=1)
        return self.source

    def sender_report_seen(self, middle: int, arrival: float) -> None:
        """Note an SR this leg's phone sent, to match the other phone's LSR later."""
        self._srs[middle] = arrival
        while len(self._srs) > _SR_MEMORY:
            self._srs.popitem(last=False)

    def block_received(self, block: ReportBlock, other: LegQuality, arrival: float) -> None:
        """A report block from this leg's phone; its LSR may name an SR of the other leg."""
        self.reported = block
        sent = other._srs.get(block.lsr) if block.lsr else None
        if sent is not None:
            rtt = arrival - sent - block.dlsr / 65536
            if rtt >= 0:
                self.rtts.append(rtt)

    @property
    def packets(self) -> int:
        return self.previous_packets + (self.source.packets if self.source else 0)

    @property
    def lost(self) -> int:
        current = max(0, self.source.lost) if self.source else 0
        return self.previous_lost + current

    @property
    def jitter(self) -> float:
        """Interarrival jitter in seconds (RFC 3550 A.8) of the current source."""
        return self.source.jitter_seconds if self.source else 0.0

    @property
    def rtt(self) -> float | None:
        """Mean round trip relay <-> phone in seconds, None without matched RTCP."""
        return sum(self.rtts) / len(self.rtts) if self.rtts else None

    def summary(self, codec: Codec = G711_PLC) -> dict[str, object]:
        """The figures stored with the CDR; jitter and RTT in milliseconds."""
        packets, lost = self.packets, self.lost
        loss = lost / (packets + lost) if packets + lost else 0.0
        rtt = self.rtt
        out: dict[str, object] = {
            "packets": packets,
            "lost": lost,
            "loss_pct": round(100 * loss, 2),
            "jitter_ms": round(1000 * self.jitter, 2),
            "rtt_ms": None if rtt is None else round(1000 * rtt, 1),
            "mos": round(estimate_mos(loss, self.jitter, rtt, codec), 2) if packets else None,
        }
        if self.reported is not None:
            out["reported_loss_pct"] = round(100 * self.reported.fraction_lost / 256, 2)
            out["reported_jitter_ms"] = round(1000 * self.reported.jitter / self.clock_rate, 2)
        return out


class CallQuality:
    """Both legs of one call; feed it what the relay sees, read `summary()` at hang-up.

    Legs are whatever hashable names the caller uses (the relay's `Leg.A` and
    `Leg.B`); exactly two are expected, since RTT matching pairs each leg
    with the other.
    """

    def __init__(
        self,
        legs: tuple[Hashable, Hashable],
        *,
        clock_rate: int = 8000,
        event_types: frozenset[int] = frozenset({101}),
    ) -> None:
        self.legs = {leg: LegQuality(clock_rate, event_types) for leg in legs}
        first, second = legs
        self._other = {first: second, second: first}
        self._queue: list[tuple[Hashable, bytes, float]] = []
        self.queue_limit = 10_000  # ~50 s of a call's two legs; beyond it the oldest half goes

    def tap(self, leg: Hashable, data: bytes, arrival: float) -> None:
        """An RTP datagram from `leg`'s phone (the relay's tap signature)."""
        self.legs[leg].rtp(data, arrival)

    def deferred_tap(self, leg: Hashable, data: bytes, arrival: float) -> None:
        """Like `tap` but only queues the datagram: one list append on the relay's loop.

        `drain()` (e.g. from the relay's once-a-second sweep) or `summary()`
        does the header work later, in one batch.
        """
        queue = self._queue
        queue.append((leg, data, arrival))
        if len(queue) > self.queue_limit:
            self.drain(len(queue) // 2)

    def drain(self, limit: int | None = None) -> int:
        """Account queued datagrams (all, or the oldest `limit`); returns how many."""
        queue = self._queue
        count = len(queue) if limit is None else min(limit, len(queue))
        legs = self.legs
        for leg, data, arrival in queue[:count]:
            legs[leg].rtp(data, arrival)
        del queue[:count]
        return count

    def rtcp(self, leg: Hashable, data: bytes, arrival: float) -> None:
        """An RTCP datagram from `leg`'s phone; malformed ones are counted and skipped."""
        mine = self.legs[leg]
        other = self.legs[self._other[leg]]
        mine.rtcp_packets += 1
        try:
            for packet in iter_packets(data):
                if isinstance(packet, SenderReport):
                    mine.sender_report_seen(packet.sender.middle, arrival)
                if isinstance(packet, SenderReport | ReceiverReport):
                    for block in packet.reports:
                        mine.block_received(block, other, arrival)
        except RtcpError:
            mine.rtcp_errors += 1

    def chain(self, then: Tap | None) -> Tap:
        """A tap that feeds this call's statistics and then `then` (e.g. the recorder)."""
        if then is None:
            return self.tap
        mine = self.tap

        def both(leg: Hashable, data: bytes, arrival: float) -> None:
            mine(leg, data, arrival)
            then(leg, data, arrival)

        return both

    def summary(self, codec: Codec = G711_PLC) -> dict[Hashable, dict[str, object]]:
        """Per-leg figures for the CDR, keyed by the leg names given at construction."""
        self.drain()
        return {leg: quality.summary(codec) for leg, quality in self.legs.items()}
