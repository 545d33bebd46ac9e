"""The RTP side of one call: a UDP socket, a 20 ms clock, G.711, jitter buffer, RFC 4733.

`RtpStream` binds the even port of a pair from the UA's `PortAllocator`
(RTCP's odd port stays reserved, unused: RFC 3550 6 makes RTCP optional for
two-party calls and the PBX relay does not need it). Every 20 ms, paced by
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
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pbx.media import g711
from pbx.media.dtmf import DtmfEnded, DtmfEvent, EventReceiver, TelephoneEventError, event_packets
from pbx.media.jitter import Concealer, FrameKind, JitterBuffer
from pbx.media.ports import PortAllocator, PortPair
from pbx.media.rtp import RtpError, RtpPacket, is_rtcp
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


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, stream: RtpStream) -> None:
        self.stream = stream

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
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
        self._ssrc = secrets.randbits(32)
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
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._pair is not None and self._allocator is not None:
            self._allocator.release(self._pair)
            self._pair = None
        self._dtmf_finished()

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
