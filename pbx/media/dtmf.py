"""DTMF: RFC 4733 telephone-events (parse, send, receive) and in-band detection (ITU-T Q.24).

Theory of operation
-------------------
Phones signal keypad digits in one of two ways:

1. Out of band in the media stream, as RFC 4733 telephone-events (the
   successor of RFC 2833). One key press is one *event*, identified by the
   RTP timestamp of its start (§2.3.1, §2.5.1.1). The sender repeats a
   4-octet payload (event, E bit, volume, duration so far; §2.3) every
   packet interval, sets the RTP marker on the first packet (§2.5.1.1),
   and sends the final packet, with E set, three times with the same
   timestamp and duration (§2.5.1.4), because any packet may be lost.
   `event_packets` builds that schedule; `EventReceiver` turns a stream of
   such packets back into exactly one `DtmfStarted` and one `DtmfEnded` per
   key press: it keys on the timestamp, ignores the retransmitted end
   packets and late stragglers of a finished event, starts an event from
   any packet when the first ones were lost (§2.5.2.1), and ends an event
   whose end packets were all lost when the next one begins or when no
   packet arrived for `timeout` seconds (§2.5.2.2; call `expire(now)`).

2. In band, as two sines in the audio (ITU-T Q.23: one of four "row"
   frequencies 697/770/852/941 Hz plus one of four "column" frequencies
   1209/1336/1477/1633 Hz). `InbandDetector` finds them in 8 kHz int16
   audio with the Goertzel algorithm, one filter per frequency over blocks
   of `BLOCK` samples (its recurrence evaluated in closed form, see
   `goertzel_states`), and applies ITU-T Q.24's acceptance rules: a block
   counts as a hit only if the strongest row and column tones are loud
   enough (energy threshold), each stands well above the others of its
   group, the twist between them is within the limits (normal twist, the
   column weaker: <= 8 dB; reverse twist, the column stronger: <= 4 dB),
   and the two tones carry nearly all the block's energy, which rejects
   speech, music, harmonics and two unrelated sines. A digit is reported
   after `MIN_HITS` consecutive hit blocks of the same digit (>= 40 ms of
   tone is always accepted, < 20 ms never), once, and a new digit needs
   `MIN_GAP` non-hit blocks in between (Q.24 interdigit pause), so a short
   drop-out in a long tone does not double the digit.

All of it is sans-IO: no sockets, no clock reads; time comes in as `now`
(monotonic seconds) and audio as numpy arrays.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DIGITS",
    "DtmfEnded",
    "DtmfStarted",
    "EventPacket",
    "EventReceiver",
    "InbandDetector",
    "InbandDigit",
    "TelephoneEvent",
    "TelephoneEventError",
    "digit_to_event",
    "event_packets",
    "event_to_digit",
    "inband_samples",
]

DIGITS = "0123456789*#ABCD"
"""RFC 4733 §3.2 events 0..15 in order: digits, star, pound, A-D."""
FLASH = 16

_PAYLOAD = struct.Struct("!BBH")
_MAX_DURATION = 0xFFFF


class TelephoneEventError(ValueError):
    """A payload that is not an RFC 4733 telephone-event, or an event that cannot be sent."""


def digit_to_event(digit: str) -> int:
    """'0'..'9', '*', '#', 'A'..'D' (any case) -> RFC 4733 event code 0..15."""
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise TelephoneEventError(f"not a DTMF digit: {digit!r} (expected one of {DIGITS})")
    return index


def event_to_digit(event: int) -> str | None:
    """RFC 4733 event code -> digit character; None for flash (16) and other events."""
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 payload block: event, E(nd) bit, R bit, volume (-dBm0), duration.

    `duration` is in RTP timestamp units (samples at 8 kHz) since the event's
    start timestamp. `bytes(event)` and `TelephoneEvent.parse` round-trip.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0
    reserved: bool = False

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse the first 4-octet block of a telephone-event payload (§2.3)."""
        if len(payload) < _PAYLOAD.size:
            raise TelephoneEventError(
                f"telephone-event payload of {len(payload)} bytes, needs 4 (RFC 4733 §2.3)"
            )
        event, flags, duration = _PAYLOAD.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration, bool(flags & 0x40))

    def __bytes__(self) -> bytes:
        if not 0 <= self.event <= 255:
            raise TelephoneEventError(f"event {self.event} does not fit 8 bits")
        if not 0 <= self.volume <= 63:
            raise TelephoneEventError(f"volume {self.volume} not in 0..63 (-dBm0, RFC 4733 §2.3.4)")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise TelephoneEventError(f"duration {self.duration} does not fit 16 bits")
        flags = (0x80 if self.end else 0) | (0x40 if self.reserved else 0) | self.volume
        return _PAYLOAD.pack(self.event, flags, self.duration)

    @property
    def digit(self) -> str | None:
        return event_to_digit(self.event)


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One telephone-event packet to send `offset` seconds after the key press began.

    The RTP sender adds its own sequence number and SSRC; the timestamp is
    the event's start timestamp in every packet of the event (§2.5.1.1).
    """

    offset: float
    marker: bool
    timestamp: int
    event: TelephoneEvent

    @property
    def payload(self) -> bytes:
        return bytes(self.event)


def event_packets(
    digit: str,
    timestamp: int,
    *,
    duration: float = 0.1,
    interval: float = 0.05,
    volume: int = 10,
    clock_rate: int = 8000,
    end_repeats: int = 3,
) -> list[EventPacket]:
    """The packets of one key press of `duration` seconds (RFC 4733 §2.5.1).

    A start packet at offset 0 with the marker, an update every `interval`
    seconds while the key is held (each says how long the tone has lasted
    by the end of its interval, capped at the total), then `end_repeats`
    end packets `interval` apart, all with the final duration and the same
    timestamp. Durations past 65535 samples (8.19 s at 8 kHz) would need
    §2.5.1.3 segments and are refused.
    """
    event = digit_to_event(digit)
    total = round(duration * clock_rate)
    step = round(interval * clock_rate)
    if total <= 0 or step <= 0:
        raise TelephoneEventError("event duration and packet interval must be positive")
    if total > _MAX_DURATION:
        raise TelephoneEventError(f"event of {total} samples needs segmenting (RFC 4733 §2.5.1.3)")
    ts = timestamp & 0xFFFFFFFF
    packets = [
        EventPacket(
            offset=elapsed / clock_rate,
            marker=elapsed == 0,
            timestamp=ts,
            event=TelephoneEvent(event, False, volume, min(elapsed + step, total)),
        )
        for elapsed in range(0, total, step)
    ]
    final = TelephoneEvent(event, True, volume, total)
    packets += [
        EventPacket((total + i * step) / clock_rate, False, ts, final) for i in range(end_repeats)
    ]
    return packets


@dataclass(frozen=True, slots=True)
class DtmfStarted:
    """A key press began (first packet of a new event seen)."""

    digit: str | None
    event: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class DtmfEnded:
    """A key press ended; `duration` in samples, `lost_end` if no E packet arrived."""

    digit: str | None
    event: int
    timestamp: int
    duration: int
    lost_end: bool = False


DtmfEvent = DtmfStarted | DtmfEnded


class _Active:
    __slots__ = ("event", "timestamp", "duration", "last_at")

    def __init__(self, event: int, timestamp: int, duration: int, now: float) -> None:
        self.event = event
        self.timestamp = timestamp
        self.duration = duration
        self.last_at = now


class EventReceiver:
    """Telephone-event packets of one stream -> one start and one end per key press.

    `receive(marker, timestamp, payload, now)` takes what the RTP parser
    gives for each packet of the negotiated telephone-event payload type;
    `expire(now)` ends an event whose packets stopped, and
    `next_deadline()` says when to call it.
    """

    def __init__(self, timeout: float = 0.5, remember: int = 16) -> None:
        self.timeout = timeout
        self._active: _Active | None = None
        self._done: deque[int] = deque(maxlen=remember)

    def receive(self, marker: bool, timestamp: int, payload: bytes, now: float) -> list[DtmfEvent]:
        """Feed one packet; malformed payloads raise `TelephoneEventError`."""
        block = TelephoneEvent.parse(payload)
        if timestamp in self._done:
            return []  # a retransmitted end packet or a late update of a finished event
        out: list[DtmfEvent] = []
        active = self._active
        if active is not None and active.timestamp != timestamp:
            out.append(self._finish(lost_end=True))
            active = None
        if active is None:
            active = self._active = _Active(block.event, timestamp, block.duration, now)
            out.append(DtmfStarted(event_to_digit(block.event), block.event, timestamp))
        active.duration = max(active.duration, block.duration)
        active.last_at = now
        if block.end:
            out.append(self._finish(lost_end=False))
        return out

    def expire(self, now: float) -> list[DtmfEvent]:
        """End the current event if nothing arrived for `timeout` seconds (§2.5.2.2)."""
        active = self._active
        if active is None or now - active.last_at < self.timeout:
            return []
        return [self._finish(lost_end=True)]

    def next_deadline(self) -> float | None:
        return None if self._active is None else self._active.last_at + self.timeout

    def _finish(self, lost_end: bool) -> DtmfEnded:
        active = self._active
        assert active is not None
        self._active = None
        self._done.append(active.timestamp)
        return DtmfEnded(
            event_to_digit(active.event), active.event, active.timestamp, active.duration, lost_end
        )


# --- in-band detection (ITU-T Q.23 frequencies, Q.24 acceptance) -----------------------

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
"""KEYPAD[row][column] (ITU-T Q.23 Figure 1)."""

SAMPLE_RATE = 8000
BLOCK = 102
"""Samples per Goertzel block (12.75 ms): fine enough in time for Q.24's 40 ms, and the
78 Hz resolution still separates neighbours 73 Hz apart (697/770) by > 20 dB."""
MIN_HITS = 2
"""Consecutive hit blocks that make a digit: two whole blocks fit any 40 ms tone."""
MIN_GAP = 2
"""Non-hit blocks (25.5 ms) that end a digit, so a new press of the same key counts again."""
NORMAL_TWIST_DB = 8.0
REVERSE_TWIST_DB = 4.0
MIN_LEVEL_DBFS = -36.0
"""Each tone's level at least this (dB relative to a full-scale sine); ~ -33 dBm0."""
NEIGHBOUR_DB = 10.0
"""Every other tone of a group must be this much below the strongest one."""
PURITY = 0.8
"""Share of the block's energy the two tones must carry; also rejects blocks the tone
covers only partly, which keeps < 20 ms tones out."""


@dataclass(frozen=True, slots=True)
class _Limits:
    normal_twist: float
    reverse_twist: float
    neighbour: float
    purity: float


_STRICT = _Limits(NORMAL_TWIST_DB, REVERSE_TWIST_DB, NEIGHBOUR_DB, PURITY)
_HOLD = _Limits(NORMAL_TWIST_DB + 3, REVERSE_TWIST_DB + 3, NEIGHBOUR_DB - 4, PURITY - 0.2)
"""Hysteresis: a digit already reported stays on under looser limits, so block-to-block
wobble of the measured twist or a burst of noise does not split one key press in two."""


@dataclass(frozen=True, slots=True)
class InbandDigit:
    """A digit heard in the audio; `sample` is where its first hit block began."""

    digit: str
    sample: int


def inband_samples(
    digit: str, duration: float = 0.1, level_dbm0: float = -10.0, high_boost_db: float = 2.0
) -> npt.NDArray[np.int16]:
    """8 kHz int16 audio of one key press: its row and column sines (ITU-T Q.23).

    The column tone is `high_boost_db` louder than the row tone, the usual
    pre-emphasis (a reverse twist within Q.24's 4 dB) that offsets the line's
    loss at higher frequencies. Levels in dBm0, a full-scale sine being +3.14.
    """
    index = digit_to_event(digit)
    row, col = _KEY_POSITION[DIGITS[index]]
    t = np.arange(round(duration * SAMPLE_RATE)) / SAMPLE_RATE
    low = 32767 * 10 ** ((level_dbm0 - 3.14) / 20)
    high = low * 10 ** (high_boost_db / 20)
    signal = low * np.sin(2 * np.pi * ROWS[row] * t) + high * np.sin(2 * np.pi * COLUMNS[col] * t)
    samples: npt.NDArray[np.int16] = np.round(signal).clip(-32768, 32767).astype(np.int16)
    return samples


_KEY_POSITION = {key: (r, c) for r, keys in enumerate(KEYPAD) for c, key in enumerate(keys)}


class InbandDetector:
    """ITU-T Q.24 DTMF receiver for one direction of 8 kHz 16-bit audio; see module doc."""

    def __init__(self) -> None:
        freqs = np.array(ROWS + COLUMNS)
        self._coeff = 2.0 * np.cos(2.0 * np.pi * freqs / SAMPLE_RATE)
        self._states = goertzel_states(freqs, BLOCK)
        self._pending = np.zeros(0, dtype=np.float64)
        self._position = 0  # sample index of the first pending sample
        self._candidate: str | None = None
        self._hits = 0
        self._misses = MIN_GAP
        self._reported: str | None = None
        self._candidate_at = 0
        min_amplitude = 32768.0 * 10 ** (MIN_LEVEL_DBFS / 20)
        self._min_power = min_amplitude**2 / 2

    def feed(self, samples: npt.NDArray[np.int16]) -> list[InbandDigit]:
        """Feed any number of samples; returns the digits completed by them, in order."""
        data = np.concatenate((self._pending, np.asarray(samples, dtype=np.float64)))
        count = len(data) // BLOCK
        self._pending = data[count * BLOCK :]
        if count == 0:
            return []
        blocks = data[: count * BLOCK].reshape(count, BLOCK)
        powers = _goertzel(blocks, self._coeff, self._states)
        energy = np.mean(blocks * blocks, axis=1)
        strict = self._classify(powers, energy, _STRICT)
        hold = self._classify(powers, energy, _HOLD)
        out: list[InbandDigit] = []
        for i in range(count):
            digit = strict[i]
            if digit is None and hold[i] is not None and hold[i] == self._reported:
                digit = hold[i]
            found = self._step(digit, self._position + i * BLOCK)
            if found is not None:
                out.append(found)
        self._position += count * BLOCK
        return out

    def _classify(
        self, power: npt.NDArray[np.float64], energy: npt.NDArray[np.float64], limits: _Limits
    ) -> list[str | None]:
        """The digit each block holds under the Q.24 rules (with `limits`), or None.

        `power` is (blocks, 8): the four row tones then the four column tones.
        Plain floats: for the one or two blocks of a 20 ms frame this beats numpy.
        """
        normal = 10 ** (limits.normal_twist / 10)
        reverse = 10 ** (-limits.reverse_twist / 10)
        neighbour = 10 ** (-limits.neighbour / 10)
        floor = self._min_power
        out: list[str | None] = []
        for tones, total in zip(power.tolist(), energy.tolist(), strict=True):
            rows, cols = tones[:4], tones[4:]
            row, col = max(rows), max(cols)
            ok = (
                row >= floor
                and col >= floor
                and reverse <= row / col <= normal
                and sum(1 for v in rows if v > row * neighbour) == 1
                and sum(1 for v in cols if v > col * neighbour) == 1
                and row + col >= limits.purity * total
            )
            out.append(KEYPAD[rows.index(row)][cols.index(col)] if ok else None)
        return out

    def _step(self, digit: str | None, at: int) -> InbandDigit | None:
        """Debounce per Q.24: MIN_HITS equal hits report once; MIN_GAP misses re-arm."""
        if digit is None:
            self._misses += 1
            if self._misses >= MIN_GAP:
                self._reported = None
            self._candidate, self._hits = None, 0
            return None
        self._misses = 0
        if digit != self._candidate:
            self._candidate, self._hits, self._candidate_at = digit, 0, at
        self._hits += 1
        if self._hits >= MIN_HITS and digit != self._reported:
            self._reported = digit
            return InbandDigit(digit, self._candidate_at)
        return None


def goertzel_states(
    freqs: npt.NDArray[np.float64], size: int, rate: int = SAMPLE_RATE
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Matrices (size, F) that give the Goertzel filters' last two states by one product.

    The recurrence s[n] = x[n] + 2cos(w) s[n-1] - s[n-2] is linear with impulse
    response h[m] = sin((m+1)w) / sin(w), so after `size` samples
    s1 = s[N-1] = sum x[n] h[N-1-n] and s2 = s[N-2] = sum x[n] h[N-2-n]. Computing
    them as a matrix product gives the same numbers as running the recurrence
    sample by sample, without a Python loop per sample.
    """
    w = 2.0 * np.pi * np.asarray(freqs, dtype=np.float64) / rate
    m = np.arange(size, dtype=np.float64)[:, None]
    h = np.sin((m + 1) * w) / np.sin(w)
    last = h[::-1]
    before = np.vstack((h[-2::-1], np.zeros((1, w.size))))
    return last, before


def _goertzel(
    blocks: npt.NDArray[np.float64],
    coeff: npt.NDArray[np.float64],
    states: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]],
) -> npt.NDArray[np.float64]:
    """Goertzel powers, all blocks and frequencies at once: (B, N) -> (B, F).

    |X(w)|^2 = s1^2 + s2^2 - 2cos(w) s1 s2 is the block's DTFT power at w, scaled
    by 2/N^2 so a sine of amplitude A at w gives A^2/2, its mean power.
    """
    s1 = blocks @ states[0]
    s2 = blocks @ states[1]
    size = blocks.shape[1]
    power: npt.NDArray[np.float64] = (s1 * s1 + s2 * s2 - coeff * s1 * s2) * (2.0 / (size * size))
    return power
