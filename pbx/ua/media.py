"""The RTP side of one call: a UDP socket, a 20 ms clock, G.711, jitter buffer, RFC 4733.

`RtpStream` binds both ports of a pair from the UA's `PortAllocator`: RTP
on the even one, RTCP on the odd one (RFC 3550 11). Every 20 ms, paced by
`loop.time()` with absolute deadlines (so timing errors do not add up), a
tick does two things:

* send: take a frame from the call's `AudioPort`, encode it with the agreed
  G.711 law and send it, timestamp +160 per tick whether or not a packet
  leaves (RFC 3550 5.1). Muted calls send encoded silence so the far end's
  jitter buffer and NAT pinholes stay alive; a held call (or a far end that
  holds us) sends nothing. While a DTMF key press is on the wire voice is
  suppressed (RFC 4733 2.5.1.1: the event replaces the audio).
* play: pop one frame from the `JitterBuffer`, decode it (or conceal a loss
  with `Concealer`), hand it to the port's sink; silence while the buffer has
  nothing, so the sink (a sound card, a WAV file) gets one frame per tick.

Received telephone-event packets go to an `EventReceiver`; each finished key
press is reported through `on_dtmf(digit, duration_ms)`. The source address
of the first packet is not latched: packets are sent to what the SDP says.

RTCP (RFC 3550 6): an `RtcpReporter` counts what we send and receive and, on
the tick, sends SR/RR + SDES CNAME to the far end's RTP port + 1 every ~5 s
(randomised, 6.3.1), and BYE when the stream closes. Reports from the far end
give the round trip (LSR/DLSR, 6.4.1) and the loss it sees from us; both
land in `stats` next to our own view of its stream (loss, jitter).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pbx.media import g711
from pbx.media.dtmf import DtmfEnded, DtmfEvent, EventReceiver, TelephoneEventError, event_packets
from pbx.media.jitter import Concealer, FrameKind, JitterBuffer
from pbx.media.ports import PortAllocator, PortPair
from pbx.media.quality import estimate_mos
from pbx.media.rtcp import (
    ReceiverReport,
    RtcpReporter,
    SenderReport,
    ntp_middle,
    ntp_time,
    parse_compound,
    round_trip,
)
from pbx.media.rtp import RtcpError, RtpError, RtpPacket, is_rtcp
from pbx.ua.audio import FRAME_SAMPLES, AudioPort, Frame
from pbx.ua.session import Negotiated

log = logging.getLogger(__name__)

PTIME = 0.020
"""Seconds per packet."""

_DECODERS: dict[int, Callable[[bytes], Frame]] = {0: g711.ulaw_decode, 8: g711.alaw_decode}
_ENCODERS: dict[str, Callable[[Frame], bytes]] = {
    "pcmu": g711.ulaw_encode,
    "pcma": g711.alaw_encode,
}
_DECODERS_BY_NAME: dict[str, Callable[[bytes], Frame]] = {
    "pcmu": g711.ulaw_decode,
    "pcma": g711.alaw_decode,
}


@dataclass(slots=True)
class StreamStats:
    sent: int = 0
    received: int = 0
    dtmf_sent: int = 0
    dtmf_received: int = 0
    bad: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    lost: int = 0
    """Packets of the far end's stream we never got (RFC 3550 A.3)."""
    jitter: float = 0.0
    """Interarrival jitter of the far end's stream, seconds (RFC 3550 A.8)."""
    round_trip: float | None = None
    """Seconds, from the far end's last report about us (RFC 3550 6.4.1)."""
    remote_fraction_lost: float | None = None
    """The share of our packets the far end reported lost in its last interval."""


@dataclass(frozen=True, slots=True)
class StreamQuality:
    """What the GUI shows about a call's audio: the far end's stream as we receive it,
    the round trip from RTCP, and an estimated MOS (pbx.media.quality, G.107)."""

    sent: int
    received: int
    lost: int
    loss: float
    """Fraction 0..1 of the far end's packets that never came."""
    jitter_ms: float
    round_trip_ms: float | None
    mos: float


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, stream: RtpStream, rtcp: bool = False) -> None:
        self.stream = stream
        self.rtcp = rtcp

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.rtcp:
            self.stream.rtcp_datagram(data)
        else:
            self.stream.datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)


class RtpStream:
    """One call's RTP socket and 20 ms sender/player (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        port: AudioPort,
        *,
        on_dtmf: Callable[[str, int], None] | None = None,
        cname: bytes = b"deskpbx-ua",
        rtcp_interval: float = 5.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.loop = loop
        self.audio = port
        self.on_dtmf = on_dtmf
        self.local_port = 0
        self.negotiated: Negotiated | None = None
        self.muted = False
        self.stats = StreamStats()
        self._pair: PortPair | None = None
        self._allocator: PortAllocator | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._wall = wall
        self._ssrc = secrets.randbits(32)
        self.reporter = RtcpReporter(self._ssrc, cname, interval=rtcp_interval)
        self._seq = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._jitter = JitterBuffer()
        self._concealer = Concealer()
        self._events = EventReceiver()
        self._dtmf_queue: list[str] = []
        self._dtmf_busy_until = 0.0
        self._dtmf_done: asyncio.Future[None] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._next_tick = 0.0
        self._encode: Callable[[Frame], bytes] = g711.ulaw_encode

    async def open(self, host: str, allocator: PortAllocator, attempts: int = 20) -> int:
        """Bind the RTP port of a free pair on `host`; skips pairs another process holds."""
        for _ in range(min(attempts, allocator.capacity)):
            pair = allocator.allocate()
            try:
                transport, _ = await self.loop.create_datagram_endpoint(
                    lambda: _Protocol(self), local_addr=(host, pair.rtp)
                )
            except OSError:
                allocator.release(pair)
                continue
            try:
                self._rtcp, _ = await self.loop.create_datagram_endpoint(
                    lambda: _Protocol(self, rtcp=True), local_addr=(host, pair.rtcp)
                )
            except OSError:
                transport.close()
                allocator.release(pair)
                continue
            self._transport = transport
            self._pair, self._allocator, self.local_port = pair, allocator, pair.rtp
            return pair.rtp
        raise OSError(f"no bindable RTP port in {allocator.low}-{allocator.high} on {host}")

    def start(self, negotiated: Negotiated) -> None:
        """(Re)start media with what offer/answer agreed; the clock keeps running."""
        self.negotiated = negotiated
        self._encode = _ENCODERS.get(negotiated.codec.name.lower(), g711.ulaw_encode)
        if self._handle is None and self._transport is not None:
            self._next_tick = self.loop.time() + PTIME
            self._handle = self.loop.call_at(self._next_tick, self._tick)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._rtcp is not None:
            self._send_rtcp(self.reporter.bye(b"call ended"))
            self._rtcp.close()
            self._rtcp = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._pair is not None and self._allocator is not None:
            self._allocator.release(self._pair)
            self._pair = None
        self._dtmf_finished()

    def quality(self) -> StreamQuality:
        stats = self.stats
        expected = stats.received + stats.lost
        loss = stats.lost / expected if expected else 0.0
        rtt = stats.round_trip
        return StreamQuality(
            sent=stats.sent,
            received=stats.received,
            lost=stats.lost,
            loss=loss,
            jitter_ms=stats.jitter * 1000,
            round_trip_ms=None if rtt is None else rtt * 1000,
            mos=round(estimate_mos(loss, stats.jitter, rtt), 2),
        )

    @property
    def closed(self) -> bool:
        return self._transport is None

    # ---- sending ----------------------------------------------------------------------

    def _tick(self) -> None:
        now = self.loop.time()
        self._next_tick += PTIME
        if self._next_tick < now - 0.2:  # the loop stalled: restart the pace, do not burst
            self._next_tick = now + PTIME
        self._handle = self.loop.call_at(self._next_tick, self._tick)
        self._play(now)
        if self.negotiated is not None and now >= self.reporter.next_deadline(now):
            self._send_rtcp(self.reporter.report(now, self._wall()))
        frame = self.audio.next_frame()
        negotiated = self.negotiated
        if negotiated is not None and negotiated.we_send and now >= self._dtmf_busy_until:
            self._start_next_digit(now)
            if now >= self._dtmf_busy_until:
                payload = self._encode(np.zeros(FRAME_SAMPLES, np.int16) if self.muted else frame)
                self._send(negotiated.codec.payload_type, payload, self._timestamp, False)
        self._timestamp = (self._timestamp + FRAME_SAMPLES) & 0xFFFFFFFF

    def _send(self, pt: int, payload: bytes, timestamp: int, marker: bool) -> None:
        negotiated = self.negotiated
        if self._transport is None or negotiated is None:
            return
        packet = RtpPacket(pt, self._seq, timestamp, self._ssrc, payload, marker)
        self._seq = (self._seq + 1) & 0xFFFF
        self._transport.sendto(bytes(packet), (negotiated.remote_host, negotiated.remote_port))
        self.stats.sent += 1
        self.reporter.sent(len(payload), timestamp, self.loop.time())

    def _send_rtcp(self, data: bytes) -> None:
        negotiated = self.negotiated
        if self._rtcp is None or negotiated is None or not negotiated.remote_port:
            return
        self._rtcp.sendto(data, (negotiated.remote_host, negotiated.remote_port + 1))
        self.stats.rtcp_sent += 1

    def rtcp_datagram(self, data: bytes) -> None:
        """A compound RTCP packet from the far end: its SR for our reports' LSR, its
        report block about us for the round trip and the loss it sees."""
        try:
            packets = parse_compound(data)
        except RtcpError:
            self.stats.bad += 1
            return
        self.stats.rtcp_received += 1
        now = self.loop.time()
        for packet in packets:
            if isinstance(packet, SenderReport):
                self.reporter.source(packet.ssrc).sender_report(packet.sender, now)
            if isinstance(packet, SenderReport | ReceiverReport):
                for block in packet.reports:
                    if block.ssrc == self._ssrc:
                        self._about_us(block.fraction_lost, block.lsr, block.dlsr)

    def _about_us(self, fraction_lost: int, lsr: int, dlsr: int) -> None:
        self.stats.remote_fraction_lost = fraction_lost / 256
        rtt = round_trip(ntp_middle(*ntp_time(self._wall())), lsr, dlsr)
        if rtt is not None:
            self.stats.round_trip = rtt

    def send_dtmf(self, digits: str) -> asyncio.Future[None]:
        """Queue RFC 4733 key presses (100 ms each, 50 ms apart); the future is done when
        the last end packet has gone."""
        self._dtmf_queue.extend(digits)
        if self._dtmf_done is None or self._dtmf_done.done():
            self._dtmf_done = self.loop.create_future()
        return self._dtmf_done

    def _dtmf_finished(self) -> None:
        if self._dtmf_done is not None and not self._dtmf_done.done():
            self._dtmf_done.set_result(None)

    def _start_next_digit(self, now: float) -> None:
        negotiated = self.negotiated
        if not self._dtmf_queue:
            return
        if negotiated is None or negotiated.dtmf_payload_type is None:
            self._dtmf_queue.clear()  # telephone-event not agreed (any more): nothing to send
            self._dtmf_finished()
            return
        digit = self._dtmf_queue.pop(0)
        pt = negotiated.dtmf_payload_type
        try:
            packets = event_packets(digit, self._timestamp)
        except TelephoneEventError:
            log.info("cannot send DTMF %r", digit)
            return
        for packet in packets:
            self.loop.call_at(
                now + packet.offset,
                self._send, pt, packet.payload, packet.timestamp, packet.marker,
            )  # fmt: skip
        self.stats.dtmf_sent += 1
        # Voice resumes 50 ms after the last end packet (inter-digit gap).
        self._dtmf_busy_until = now + packets[-1].offset + 0.05
        if not self._dtmf_queue:
            self.loop.call_at(self._dtmf_busy_until, self._dtmf_finished)

    # ---- receiving --------------------------------------------------------------------

    def datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if is_rtcp(data):
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.stats.bad += 1
            return
        now = self.loop.time()
        negotiated = self.negotiated
        if negotiated is not None and packet.payload_type == negotiated.dtmf_payload_type:
            self._dtmf_packet(packet, now)
            return
        if packet.payload_type not in _DECODERS:
            self.stats.bad += 1
            return
        self.stats.received += 1
        source = self.reporter.source(packet.ssrc)
        source.received(packet.sequence, packet.timestamp, now)
        self.stats.lost, self.stats.jitter = source.lost, source.jitter_seconds
        self._jitter.push(
            packet.sequence, packet.timestamp, bytes([packet.payload_type]) + packet.payload,
            now, ssrc=packet.ssrc,
        )  # fmt: skip

    def _dtmf_packet(self, packet: RtpPacket, now: float) -> None:
        try:
            events = self._events.receive(packet.marker, packet.timestamp, packet.payload, now)
        except TelephoneEventError:
            self.stats.bad += 1
            return
        self._report(events)

    def _report(self, events: list[DtmfEvent]) -> None:
        for event in events:
            if isinstance(event, DtmfEnded) and event.digit is not None:
                self.stats.dtmf_received += 1
                if self.on_dtmf is not None:
                    self.on_dtmf(event.digit, event.duration // 8)

    def _play(self, now: float) -> None:
        self._report(self._events.expire(now))
        frame = self._jitter.pop(now)
        if frame is None:  # nothing to play yet (or any more): the sink hears silence
            self.audio.deliver(np.zeros(FRAME_SAMPLES, np.int16))
            return
        if frame.kind is FrameKind.VOICE and frame.payload:
            decode = _DECODERS.get(frame.payload[0], g711.ulaw_decode)
            samples = self._concealer.good(decode(frame.payload[1:]))
        elif frame.kind is FrameKind.SILENCE:
            samples = np.zeros(FRAME_SAMPLES, np.int16)
        else:
            samples = self._concealer.conceal()
        self.audio.deliver(samples)
