"""The user agent's RTP stream (pbx.ua.media) on a fake clock: pacing, mute, hold,
RFC 4733 sending and receiving, jitter-buffered playout."""

from __future__ import annotations

import asyncio
import heapq
import itertools

import numpy as np
import pytest

from pbx.media import g711
from pbx.media.dtmf import TelephoneEvent, event_packets
from pbx.media.rtp import RtpPacket
from pbx.sip.sdp import PCMA, PCMU, Direction
from pbx.ua.audio import AudioPort, FrameRecorder, ToneSource
from pbx.ua.media import RtpStream
from pbx.ua.session import Negotiated


class _Handle:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """time(), call_at() and create_future() on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self._queue: list = []
        self._order = itertools.count()
        self._real = asyncio.new_event_loop()

    def time(self) -> float:
        return self.now

    def call_at(self, when, fn, *args):
        handle = _Handle()
        heapq.heappush(self._queue, (when, next(self._order), handle, fn, args))
        return handle

    def create_future(self):
        return self._real.create_future()

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._queue and self._queue[0][0] <= end + 1e-9:
            when, _, handle, fn, args = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            if not handle.cancelled:
                fn(*args)
        self.now = end

    def close(self) -> None:
        self._real.close()


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[RtpPacket, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append((RtpPacket.parse(data), addr))

    def close(self) -> None:
        pass


def _negotiated(**changes) -> Negotiated:
    base = dict(remote_host="192.0.2.1", remote_port=4000, codec=PCMU, dtmf_payload_type=101,
                local=Direction.SENDRECV, remote=Direction.SENDRECV)  # fmt: skip
    base.update(changes)
    return Negotiated(**base)


@pytest.fixture
def rig():
    loop = FakeLoop()
    heard = FrameRecorder()
    digits: list[tuple[str, int]] = []
    stream = RtpStream(loop, AudioPort(ToneSource(1000.0), heard),  # type: ignore[arg-type]
                       on_dtmf=lambda d, ms: digits.append((d, ms)))  # fmt: skip
    transport = FakeTransport()
    stream._transport = transport  # type: ignore[assignment]
    yield loop, stream, transport, heard, digits
    loop.close()


def test_one_packet_every_20_ms_with_rising_sequence_and_timestamp(rig):
    loop, stream, transport, _, _ = rig
    stream.start(_negotiated())
    loop.advance(1.0)
    packets = [p for p, _ in transport.sent]
    assert len(packets) == 50
    assert {addr for _, addr in transport.sent} == {("192.0.2.1", 4000)}
    assert all(p.payload_type == 0 and len(p.payload) == 160 for p in packets)
    assert [(b.sequence - a.sequence) & 0xFFFF for a, b in itertools.pairwise(packets)] == [1] * 49
    assert [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(packets)] == [
        160
    ] * 49  # fmt: skip
    audio = np.concatenate([g711.ulaw_decode(p.payload) for p in packets])
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * 8000 / audio.size - 1000) < 5
    assert len({p.ssrc for p in packets}) == 1


def test_pcma_is_encoded_with_a_law(rig):
    loop, stream, transport, _, _ = rig
    stream.start(_negotiated(codec=PCMA))
    loop.advance(0.1)
    assert {p.payload_type for p, _ in transport.sent} == {8}
    decoded = g711.alaw_decode(transport.sent[0][0].payload)
    assert np.abs(decoded).max() > 4000


def test_mute_sends_encoded_silence(rig):
    loop, stream, transport, _, _ = rig
    stream.start(_negotiated())
    stream.muted = True
    loop.advance(0.2)
    assert len(transport.sent) == 10
    assert all(p.payload == bytes([g711.ULAW_SILENCE]) * 160 for p, _ in transport.sent)


def test_held_sends_nothing_but_the_timestamp_runs_on(rig):
    loop, stream, transport, _, _ = rig
    stream.start(_negotiated())
    loop.advance(0.1)
    last = transport.sent[-1][0]
    stream.start(_negotiated(remote=Direction.SENDONLY))  # the far end holds us
    loop.advance(0.5)
    assert len(transport.sent) == 5
    stream.start(_negotiated())
    loop.advance(0.02)
    resumed = transport.sent[-1][0]
    assert resumed.sequence == (last.sequence + 1) & 0xFFFF
    assert (resumed.timestamp - last.timestamp) & 0xFFFFFFFF == 160 * 26


def test_dtmf_replaces_voice_and_completes_after_the_end_packets(rig):
    loop, stream, transport, _, _ = rig
    stream.start(_negotiated())
    loop.advance(0.1)
    done = stream.send_dtmf("5")
    loop.advance(0.5)
    assert done.done()
    events = [p for p, _ in transport.sent if p.payload_type == 101]
    blocks = [TelephoneEvent.parse(p.payload) for p in events]
    assert len(events) == 5 and events[0].marker and not any(p.marker for p in events[1:])
    assert {p.timestamp for p in events} == {events[0].timestamp}
    assert [b.event for b in blocks] == [5] * 5
    assert [b.end for b in blocks] == [False, False, True, True, True]
    assert blocks[-1].duration == 800
    first, last = transport.sent.index((events[0], ("192.0.2.1", 4000))), None
    voice_during = [
        p for p, _ in transport.sent[first:] if p.payload_type == 0
        and (p.timestamp - events[0].timestamp) & 0xFFFFFFFF < 160 * 12
    ]  # fmt: skip
    assert voice_during == [] and last is None
    assert stream.stats.dtmf_sent == 1


def test_without_telephone_event_dtmf_completes_at_once_and_sends_nothing(rig):
    loop, stream, transport, _, _ = rig
    stream.start(_negotiated(dtmf_payload_type=None))
    done = stream.send_dtmf("12")
    loop.advance(0.1)
    assert done.done() and all(p.payload_type == 0 for p, _ in transport.sent)


def _voice(stream, loop, order) -> list[int]:
    """Send frame i (mu-law code 0x80 + i, a level of its own) in `order`, 20 ms apart;
    the frame numbers played."""
    for i in order:
        data = bytes(RtpPacket(0, 1000 + i, 5000 + 160 * i, 77, bytes([0x80 + i]) * 160))
        stream.datagram(data, ("192.0.2.1", 4000))
        loop.advance(0.02)
    loop.advance(0.3)
    levels = {int(g711.ulaw_decode(bytes([0x80 + i]))[0]): i for i in order}
    return [levels[int(f[0])] for f in stream.audio.sink.frames  # type: ignore[union-attr]
            if f.any() and (f == f[0]).all() and int(f[0]) in levels]  # fmt: skip


def test_received_voice_is_played_in_order_through_the_jitter_buffer(rig):
    loop, stream, _, heard, _ = rig
    stream.start(_negotiated())
    played = _voice(stream, loop, range(1, 51))
    assert stream.stats.received == 50
    assert played == sorted(played) and len(set(played)) == len(played)
    assert len(played) >= 46  # the buffer may drop a few to shrink its delay, never more
    assert not heard.frames[0].any()  # silence until the playout delay has passed


def test_reordered_packets_are_put_back_in_order(rig):
    loop, stream, _, _, _ = rig
    stream.start(_negotiated())
    order = [1, 2, 4, 3, 6, 5, 7, 8, 10, 9] + list(range(11, 31))
    played = _voice(stream, loop, order)
    assert played == sorted(played) and {3, 5, 9} <= set(played)


def test_received_rfc4733_events_report_each_key_once(rig):
    loop, stream, _, _, digits = rig
    stream.start(_negotiated())
    for digit, ts in (("7", 8000), ("#", 16000)):
        for packet in event_packets(digit, ts):
            data = bytes(RtpPacket(101, 1, packet.timestamp, 9, packet.payload, packet.marker))
            stream.datagram(data, ("192.0.2.1", 4000))
            loop.advance(0.05)
    assert digits == [("7", 100), ("#", 100)]
    assert stream.stats.dtmf_received == 2


def test_garbage_and_unknown_payload_types_are_counted_not_played(rig):
    loop, stream, _, heard, _ = rig
    stream.start(_negotiated())
    stream.datagram(b"\x00\x01", ("192.0.2.1", 4000))
    stream.datagram(bytes(RtpPacket(18, 1, 1, 1, b"\x00" * 20)), ("192.0.2.1", 4000))
    loop.advance(0.2)
    assert stream.stats.bad == 2 and stream.stats.received == 0
    assert len(heard.frames) == 10 and not heard.samples().any()  # silence, one per tick


def test_close_stops_the_clock(rig):
    loop, stream, transport, _, _ = rig
    stream.start(_negotiated())
    loop.advance(0.1)
    stream.close()
    count = len(transport.sent)
    loop.advance(0.5)
    assert len(transport.sent) == count and stream.closed


class RawTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass


def test_rtcp_sender_reports_go_to_the_next_port_and_bye_on_close(rig):
    from pbx.media.rtcp import Bye, SenderReport, SourceDescription, parse_compound

    loop, stream, _, _, _ = rig
    rtcp = RawTransport()
    stream._rtcp = rtcp  # type: ignore[assignment]
    stream.start(_negotiated())
    loop.advance(12.0)  # first report after 1.25-3.75 s, then every 2.5-7.5 s
    assert 2 <= len(rtcp.sent) <= 5
    assert {addr for _, addr in rtcp.sent} == {("192.0.2.1", 4001)}
    first = parse_compound(rtcp.sent[0][0])
    assert isinstance(first[0], SenderReport) and isinstance(first[1], SourceDescription)
    assert first[0].ssrc == stream._ssrc and first[1].cname(stream._ssrc) == b"deskpbx-ua"
    assert 60 <= first[0].sender.packet_count <= 190
    stream.close()
    assert isinstance(parse_compound(rtcp.sent[-1][0])[-1], Bye)


def test_a_report_about_us_gives_the_round_trip_and_the_far_ends_loss():
    from pbx.media.rtcp import ReceiverReport, ReportBlock, ntp_middle, ntp_time, to_units

    loop = FakeLoop()
    wall = [1_800_000_000.0]
    stream = RtpStream(loop, AudioPort(), wall=lambda: wall[0])  # type: ignore[arg-type]
    lsr = ntp_middle(*ntp_time(wall[0] - 0.150))  # our SR left 150 ms ago...
    block = ReportBlock(stream._ssrc, fraction_lost=64, lsr=lsr, dlsr=to_units(0.100))
    stream.rtcp_datagram(bytes(ReceiverReport(1234, (block,))))  # ...held 100 ms there
    assert stream.stats.round_trip == pytest.approx(0.050, abs=0.001)
    assert stream.stats.remote_fraction_lost == 0.25 and stream.stats.rtcp_received == 1
    stream.rtcp_datagram(b"\x81\xc9\x00\x10")  # claims more bytes than it has
    assert stream.stats.bad == 1
    loop.close()


def test_received_voice_feeds_loss_and_jitter_statistics(rig):
    loop, stream, _, _, _ = rig
    stream.start(_negotiated())
    for i in range(10):
        if i not in (3, 8):  # lost on the way
            stream.datagram(bytes(RtpPacket(0, 500 + i, 160 * i, 99, b"\xff" * 160)), ("h", 1))
        loop.advance(0.02)
    assert stream.stats.lost == 2
    assert stream.stats.jitter < 0.001  # perfectly paced arrivals


def test_quality_snapshot_from_loss_jitter_and_round_trip(rig):
    loop, stream, _, _, _ = rig
    stream.start(_negotiated())
    assert stream.quality().mos > 4.3 and stream.quality().loss == 0.0  # nothing yet: no loss
    for i in range(100):
        if i % 10 != 5:  # 10 % lost
            stream.datagram(bytes(RtpPacket(0, 500 + i, 160 * i, 99, b"\xff" * 160)), ("h", 1))
        loop.advance(0.02)
    stream.stats.round_trip = 0.2
    quality = stream.quality()
    assert (quality.received, quality.lost) == (90, 10) and quality.loss == pytest.approx(0.1)
    assert quality.round_trip_ms == pytest.approx(200.0)
    assert 2.5 < quality.mos < 4.0  # 10 % loss is clearly audible
