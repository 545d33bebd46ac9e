"""An adaptive jitter buffer for one RTP stream, and a simple packet-loss concealer for G.711.

Theory of operation
-------------------
`push(seq, timestamp, payload, arrival)` files a packet by its extended
sequence number (RFC 3550 A.1 style: the 16-bit number plus a cycle count,
so 65535 -> 0 just carries on); `pop(now)`, called once per frame period
(20 ms for the usual G.711 ptime), hands out exactly one `Frame`, or None
while there is nothing to play. The buffer is codec-agnostic: payloads are
bytes, time is the RTP timestamp at `clock_rate` and `arrival`/`now` are
seconds on one monotonic clock. No clock is read here.

Timing. Each packet's *transit* is arrival - timestamp / clock_rate. The
*base* is the smallest transit over the last `base_window` packets: the
delay of a packet that met no queueing. A packet with timestamp T is due at
base + T / rate + target, where `target` = clamp(k * jitter, min, max) and
jitter is the RFC 3550 §6.4.1 / A.8 interarrival jitter (1/16 gain, here
in seconds). The sliding minimum follows a slowly drifting sender clock.

Adaptation. In a silence gap (the next packet's timestamp lies ahead of the
playout cursor: DTX) or before a packet with the marker bit (the first of a
talkspurt, RFC 3551 §4.1) the buffer plays SILENCE until the packet is due,
and plays it at once if it is overdue, so the delay moves to the target
between talkspurts. In continuous speech it adapts gradually: one STRETCH frame
(conceal, e.g. repeat) at most every `grow_every` frames while the delay is
half a frame under target, one frame skipped at most every `shrink_every`
frames while it is a frame over (at once beyond `max_delay`); the band
between is 1.5 frames wide, so any arrival phase has a resting point.

Loss and lateness. A sequence number missing when its turn comes plays as
LOST; if it arrives afterwards it is dropped as late. Duplicates (in the
buffer, or played recently) are dropped. When the buffer runs dry for
`idle_after` frames the talkspurt is taken to have ended: the buffer goes
idle (those concealed frames carry no sequence number and count as loss only
if a later packet shows the gap), and the next packet starts a new talkspurt
at the target delay.

Resets. A new SSRC (RFC 3550 §8: a new source) or a sequence jump beyond
MAX_DROPOUT clears the buffer. A timestamp jump (transit moves by more
than `jump` seconds at once: a sender that re-based its clock) is absorbed
by shifting that packet and its successors onto the current timeline.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_MAX_DROPOUT = 3000  # RFC 3550 A.1
_RECENT = 256  # played sequence numbers remembered to tell duplicates from late packets


class FrameKind(enum.Enum):
    """What one `pop` hands out."""

    VOICE = "voice"  # a received packet's payload
    LOST = "lost"  # the packet for this sequence number is missing: conceal it
    STRETCH = "stretch"  # inserted to grow the playout delay inside speech: conceal it
    SILENCE = "silence"  # a gap in the timestamps (DTX, between talkspurts): play silence


class Push(enum.Enum):
    """What `push` did with a packet."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame period of output. `payload` is None unless `kind` is VOICE.

    `timestamp` is the RTP timestamp (wire value, 32 bits) of the slot;
    `sequence` the 16-bit sequence number for VOICE and LOST frames.
    """

    kind: FrameKind
    timestamp: int
    payload: bytes | None = None
    sequence: int | None = None

    @property
    def lost(self) -> bool:
        return self.kind is FrameKind.LOST


@dataclass(slots=True)
class JitterStats:
    """Counters since the buffer was made (resets do not clear them).

    received: packets filed; played: VOICE frames; lost: sequence numbers that
    never arrived before their turn (those that come later move to late);
    late and duplicate: packets dropped on arrival; stretched / skipped:
    frames inserted / dropped to steer the delay; silence: SILENCE frames;
    overflow: packets dropped because the buffer was full (counted lost again
    when their turn comes); resets and timestamp_jumps: stream events.
    """

    received: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicate: int = 0
    stretched: int = 0
    skipped: int = 0
    silence: int = 0
    overflow: int = 0
    resets: int = 0
    timestamp_jumps: int = 0


@dataclass(slots=True)
class _Packet:
    ts: int  # unwrapped, shifted timestamp on the buffer's timeline
    raw_ts: int
    seq: int
    payload: bytes
    marker: bool = False


class _State(enum.Enum):
    IDLE = "idle"
    PLAYING = "playing"


class JitterBuffer:
    """Adaptive playout buffer for one RTP stream; see the module docstring."""

    _packets: dict[int, _Packet]
    _played: deque[int]
    _played_set: set[int]
    _high: int | None
    _ref: tuple[int, int]
    _shift: int
    _base: deque[tuple[int, float]]
    _count: int
    _last_transit: float | None
    _jitter: float
    _state: _State
    _cursor: int
    _cursor_ts: int
    _last_played: int | None
    _lost: set[int]
    _dry: int
    _since_adjust: int

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        frame_samples: int = 160,
        min_delay: float = 0.020,
        max_delay: float = 0.300,
        initial_delay: float = 0.060,
        k: float = 4.0,
        grow_every: int = 2,
        shrink_every: int = 12,
        idle_after: int = 3,
        base_window: int = 150,
        jump: float = 1.0,
    ) -> None:
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.k = k
        self.grow_every = grow_every
        self.shrink_every = shrink_every
        self.idle_after = idle_after
        self.base_window = base_window
        self.jump = jump
        self._initial_jitter = initial_delay / k
        self.capacity = int(2 * max_delay * clock_rate / frame_samples) + 16
        self.stats = JitterStats()
        self.delay: float | None = None  # the playout delay of the last frame played
        self._ssrc: int | None = None
        self._reset_stream()

    # ---- public ----------------------------------------------------------------------

    @property
    def jitter(self) -> float:
        """The interarrival jitter estimate in seconds (RFC 3550 A.8 gain 1/16)."""
        return self._jitter

    @property
    def target(self) -> float:
        """The playout delay the buffer steers to: k * jitter within [min, max]."""
        return min(self.max_delay, max(self.min_delay, self.k * self._jitter))

    @property
    def playing(self) -> bool:
        return self._state is _State.PLAYING

    def __len__(self) -> int:
        return len(self._packets)

    def push(
        self,
        seq: int,
        timestamp: int,
        payload: bytes,
        arrival: float,
        *,
        ssrc: int | None = None,
        marker: bool = False,
    ) -> Push:
        """File one received packet (sequence, timestamp, marker bit as on the wire)."""
        if ssrc is not None and ssrc != self._ssrc:
            if self._ssrc is not None:
                self._reset()
            self._ssrc = ssrc
        ext = self._extend(seq & 0xFFFF)
        if ext is None:
            self._reset()
            ext = self._extend(seq & 0xFFFF)
            assert ext is not None
        verdict = self._admit(ext)
        if verdict is not Push.ACCEPTED:
            return verdict
        self.stats.received += 1
        ts = self._unwrap(ext, timestamp & 0xFFFFFFFF)
        packet = _Packet(ts, timestamp, seq & 0xFFFF, payload, marker)
        self._timing(packet, arrival)
        self._packets[ext] = packet
        if len(self._packets) > self.capacity:
            del self._packets[min(self._packets)]
            self.stats.overflow += 1
        return Push.ACCEPTED

    def pop(self, now: float) -> Frame | None:
        """The frame to play now; call once per frame period. None while idle."""
        if self._state is _State.IDLE and not self._start(now):
            return None
        packet = self._packets.get(self._cursor)
        if packet is None:
            return self._missing(now)
        self._dry = 0
        gap = packet.ts - self._cursor_ts
        if gap >= self.frame_samples and now < self._due(packet):
            return self._silence()
        frame = self.frame_samples / self.clock_rate
        if packet.marker and now < self._due(packet) - frame / 2:
            return self._silence()  # a talkspurt starts (RFC 3551 §4.1): grow before it
        if gap >= self.frame_samples:
            self._cursor_ts = packet.ts
        return self._steer(packet, now)

    def reset(self) -> None:
        """Forget the stream (e.g. the call was put on hold and resumed elsewhere)."""
        self._reset()

    # ---- push side --------------------------------------------------------------------

    def _reset(self) -> None:
        self.stats.resets += 1
        self._reset_stream()

    def _reset_stream(self) -> None:
        self._packets = {}
        self._played = deque(maxlen=_RECENT)
        self._played_set = set()
        self._high = None
        self._ref = (0, 0)  # (raw, unwrapped) timestamp of the highest seq
        self._shift = 0
        self._base = deque()
        self._count = 0
        self._last_transit = None
        self._jitter = self._initial_jitter
        self._state = _State.IDLE
        self._cursor = 0  # extended sequence number of the next frame to play
        self._cursor_ts = 0  # its place on the timeline (unwrapped, shifted timestamp)
        self._last_played = None
        self._lost = set()  # sequence numbers counted lost, in case they come late
        self._dry = 0
        self._since_adjust = 0

    def _extend(self, seq: int) -> int | None:
        """The extended sequence number, or None after a jump beyond MAX_DROPOUT."""
        if self._high is None:
            self._high = seq + (1 << 16)
            return self._high
        delta = ((seq - self._high + 0x8000) & 0xFFFF) - 0x8000
        if abs(delta) > _MAX_DROPOUT:
            return None
        ext = self._high + delta
        self._high = max(self._high, ext)
        return ext

    def _admit(self, ext: int) -> Push:
        if ext in self._packets or ext in self._played_set:
            self.stats.duplicate += 1
            return Push.DUPLICATE
        started = self._state is _State.PLAYING or self._last_played is not None
        if started and ext < self._cursor:  # its turn has passed (the cursor never goes back)
            self.stats.late += 1
            if ext in self._lost:
                self._lost.discard(ext)
                self.stats.lost -= 1  # it was counted lost when its turn passed
            return Push.LATE
        return Push.ACCEPTED

    def _unwrap(self, ext: int, raw: int) -> int:
        ref_raw, ref_ts = self._ref
        if not self._count:
            ref_raw, ref_ts = raw, raw
        delta = ((raw - ref_raw + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        ts = ref_ts + delta
        if ext == self._high:
            self._ref = (raw, ts)
        return ts + self._shift

    def _timing(self, packet: _Packet, arrival: float) -> None:
        """Update the base (sliding minimum transit) and the A.8 jitter estimate."""
        transit = arrival - packet.ts / self.clock_rate
        if self._base and abs(transit - self._base[0][1]) > self.jump:
            shift = round((arrival - self._base[0][1]) * self.clock_rate) - packet.ts
            self._shift += shift
            packet.ts += shift
            transit = arrival - packet.ts / self.clock_rate
            self.stats.timestamp_jumps += 1
            self._last_transit = None
        if self._last_transit is not None:
            self._jitter += (abs(transit - self._last_transit) - self._jitter) / 16
        self._last_transit = transit
        self._count += 1
        while self._base and self._base[-1][1] >= transit:
            self._base.pop()
        self._base.append((self._count, transit))
        while self._base[0][0] <= self._count - self.base_window:
            self._base.popleft()

    # ---- pop side ---------------------------------------------------------------------

    def _due(self, packet: _Packet) -> float:
        return self._base[0][1] + packet.ts / self.clock_rate + self.target

    def _start(self, now: float) -> bool:
        """Begin a talkspurt with the earliest packet once it is due."""
        if not self._packets:
            return False
        first = min(self._packets)
        packet = self._packets[first]
        if now < self._due(packet):
            return False
        if self._last_played is not None and first > self._cursor:
            self._count_lost(self._cursor, first)  # lost in the gap before this talkspurt
        self._state = _State.PLAYING
        self._cursor = first
        self._cursor_ts = packet.ts
        self._dry = 0
        self._since_adjust = 0
        return True

    def _missing(self, now: float) -> Frame | None:
        """The cursor's packet is not here: conceal, count a loss, or go idle.

        With the buffer empty nobody knows yet whether the packet is lost,
        late or silence (DTX), so the slot is concealed without a sequence
        number and the cursor keeps waiting for it; after `idle_after` such
        slots the talkspurt is over. With later packets present the cursor's
        packet is lost: if dry slots already covered its time, the cursor
        jumps to the next packet at once, else it plays one LOST frame.
        """
        if not self._packets:
            if self._dry >= self.idle_after:
                self._dry = 0
                self._state = _State.IDLE
                return None
            self._dry += 1
            frame = Frame(FrameKind.LOST, self._cursor_ts & 0xFFFFFFFF)
            self._cursor_ts += self.frame_samples
            return frame
        self._dry = 0
        following = min(self._packets)
        if self._packets[following].ts <= self._cursor_ts:
            self._count_lost(self._cursor, following)
            self._cursor = following
            return self._steer(self._packets[following], now)
        frame = Frame(FrameKind.LOST, self._cursor_ts & 0xFFFFFFFF, None, self._cursor & 0xFFFF)
        self._count_lost(self._cursor, self._cursor + 1)
        self._cursor += 1
        self._cursor_ts += self.frame_samples
        self._since_adjust += 1
        return frame

    def _count_lost(self, start: int, stop: int) -> None:
        """Count sequence numbers start..stop-1 as lost; remember them to undo if late."""
        self.stats.lost += stop - start
        if len(self._lost) > 4 * _MAX_DROPOUT:
            self._lost = {ext for ext in self._lost if ext >= self._cursor - _RECENT}
        self._lost.update(range(start, stop))

    def _silence(self) -> Frame:
        frame = Frame(FrameKind.SILENCE, self._cursor_ts & 0xFFFFFFFF)
        self.stats.silence += 1
        self._cursor_ts += self.frame_samples
        return frame

    def _steer(self, packet: _Packet, now: float) -> Frame:
        """Play the cursor's packet, or first stretch/skip to steer the delay to target."""
        frame = self.frame_samples / self.clock_rate
        delay = now - self._base[0][1] - packet.ts / self.clock_rate
        target = self.target
        self._since_adjust += 1
        if delay < target - frame / 2 and self._since_adjust > self.grow_every:
            self._since_adjust = 0
            self.stats.stretched += 1
            self.delay = delay
            return Frame(FrameKind.STRETCH, packet.raw_ts)
        following = self._packets.get(self._cursor + 1)
        too_long = delay > target + frame and self._since_adjust > self.shrink_every
        if following is not None and (too_long or delay > self.max_delay + frame):
            self._since_adjust = 0
            self.stats.skipped += 1
            self._consume(packet)
            packet = following
            delay = now - self._base[0][1] - packet.ts / self.clock_rate
        self.delay = delay
        self._consume(packet)
        self.stats.played += 1
        return Frame(FrameKind.VOICE, packet.raw_ts, packet.payload, packet.seq)

    def _consume(self, packet: _Packet) -> None:
        ext = self._cursor
        del self._packets[ext]
        if len(self._played) == self._played.maxlen:
            self._played_set.discard(self._played[0])
        self._played.append(ext)
        self._played_set.add(ext)
        self._last_played = ext
        self._cursor = ext + 1
        self._cursor_ts = packet.ts + self.frame_samples


class Concealer:
    """Packet-loss concealment for 16-bit linear audio in the spirit of G.711 Appendix I.

    A lost frame repeats the last good frame with a gain that falls linearly
    from 1 to 0 over `fade` seconds of consecutive loss (60 ms by default),
    so a long gap turns into silence rather than a buzz. Feed every played
    frame's decoded samples with `good()`; call `conceal()` for LOST and
    STRETCH frames; play zeros for SILENCE.
    """

    def __init__(self, frame_samples: int = 160, clock_rate: int = 8000, fade: float = 0.060):
        self.frame_samples = frame_samples
        self._fade = max(1, int(fade * clock_rate))
        self._last = np.zeros(frame_samples, dtype=np.int16)
        self._run = 0  # samples concealed since the last good frame

    def good(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Remember a good frame (and return it unchanged)."""
        self._last = samples
        self._run = 0
        return samples

    def conceal(self) -> npt.NDArray[np.int16]:
        """The replacement for one missing frame."""
        start = self._run
        positions = np.arange(start, start + len(self._last), dtype=np.float64)
        gain = np.clip(1.0 - positions / self._fade, 0.0, 1.0)
        self._run += len(self._last)
        out = np.round(self._last.astype(np.float64) * gain)
        return out.astype(np.int16)

    def render(
        self, frame: Frame | None, decode: Callable[[bytes], npt.NDArray[np.int16]]
    ) -> npt.NDArray[np.int16]:
        """The samples to play for one `pop()` result: decoded, concealed or silence.

        `decode` turns a payload into 16-bit samples (e.g. `g711.ulaw_decode`).
        """
        if frame is None or frame.kind is FrameKind.SILENCE:
            self._run = self._fade  # nothing to fade out of after a silence
            return np.zeros(self.frame_samples, dtype=np.int16)
        if frame.payload is not None:
            return self.good(decode(frame.payload))
        return self.conceal()
