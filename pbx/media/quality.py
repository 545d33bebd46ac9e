"""An estimated MOS for a call leg from loss, jitter and round-trip time (simplified E-model).

ITU-T G.107 (clause "The structure and basic algorithms of the E-model";
clause 3 in the 2005 edition, 7 in later ones) rates a connection with
the transmission rating R,

    R = Ro - Is - Id - Ie,eff + A

and maps R to a mean opinion score (MOS, conversational quality estimated)
with Annex B. A PBX sees neither loudness ratings nor room noise, so this
module keeps every such input at its G.107 default value and lets only what
the media plane measures vary:

* ``Ro - Is`` is 93.36 at the defaults; with the default-value delay
  impairment at zero delay R comes to 93.2, the figure G.107 quotes for the
  default connection. The advantage factor A is 0.
* ``Id`` (G.107 "Delay impairment factor") from the one-way delay T = Ta
  (mouth to ear) with Tr = 2T: talker echo Idte (TELR = 65 dB, i.e. a
  working echo canceller), listener echo Idle (WEPL = 110 dB) and the
  absolute delay term Idd. The one-way delay is estimated as RTT/2
  (network) + jitter buffer + codec delay (packetisation).
* ``Ie,eff`` (G.107 "Equipment impairment factor") from the packet-loss
  probability Ppl in % with the codec's Ie and Bpl of ITU-T G.113 Appendix
  I: G.711 has Ie = 0 and Bpl = 4.3 without packet-loss concealment, 25.1
  with G.711 Appendix I PLC. BurstR is 1 unless the caller knows the loss
  is bursty.

Simplifications, said plainly: one codec per leg (no tandems, Ie adds),
defaults for everything acoustic, the jitter buffer delay taken as
`JITTER_BUFFER_FACTOR` times the measured RFC 3550 interarrival jitter
(floored at one frame) when the real buffer is not known, and packets the
jitter buffer would discard as late are not added to the loss (pass them in
`loss` when they are known). The figure is an estimate for monitoring and
CDRs, as G.107 itself warns it is for planning, not a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RO_MINUS_IS = 93.36  # G.107 default values: Ro = 94.77, Is = 1.41
_NO = -61.18  # G.107 total noise floor No at the defaults, dBm0p
_RO = 15 - 1.5 * (8 + _NO)  # G.107 Ro = 15 - 1.5 (SLR + No), SLR = 8 dB: 94.77
_TELR = 65.0  # talker echo loudness rating, dB (default)
_WEPL = 110.0  # weighted echo path loss, dB (default)
JITTER_BUFFER_FACTOR = 2.0


@dataclass(frozen=True, slots=True)
class Codec:
    """What the E-model needs of a codec (G.113 Appendix I) and its delay in seconds."""

    name: str
    ie: float
    bpl: float
    delay: float


# G.113 Appendix I, Table I.1 / I.3: G.711 Ie = 0; Bpl 4.3 without PLC, 25.1 with.
G711 = Codec("G.711", ie=0.0, bpl=4.3, delay=0.020)
G711_PLC = Codec("G.711 with PLC", ie=0.0, bpl=25.1, delay=0.020)


def delay_impairment(one_way: float) -> float:
    """G.107 Id = Idte + Idle + Idd at the default echo parameters, one-way delay in s."""
    t = max(0.0, one_way * 1000.0)  # G.107 works in milliseconds; T = Ta, Tr = 2T
    return _talker_echo(t) + _listener_echo(2 * t) + _absolute_delay(t)


def _talker_echo(t: float) -> float:
    """G.107 Idte from TERV, Roe and Re (STMR 15 dB, so no low-STMR correction)."""
    terv = _TELR - 40 * math.log10((1 + t / 10) / (1 + t / 150)) + 6 * math.exp(-0.3 * t * t)
    roe = -1.5 * (_NO - 2)
    re = 80 + 2.5 * (terv - 14)
    diff = roe - re
    return (diff / 2 + math.sqrt(diff * diff / 4 + 100) - 1) * (1 - math.exp(-t))


def _listener_echo(tr: float) -> float:
    """G.107 Idle from Rle = 10.5 (WEPL + 7) (Tr + 1)^-0.25."""
    rle = 10.5 * (_WEPL + 7) * math.pow(tr + 1, -0.25)
    diff = _RO - rle
    return diff / 2 + math.sqrt(diff * diff / 4 + 169)


def _absolute_delay(ta: float) -> float:
    """G.107 Idd: 0 up to Ta = 100 ms, then the X = log2(Ta / 100) curve (sT = 1, mT = 100)."""
    if ta <= 100:
        return 0.0
    x = math.log10(ta / 100) / math.log10(2)
    return 25 * (math.pow(1 + x**6, 1 / 6) - 3 * math.pow(1 + (x / 3) ** 6, 1 / 6) + 2)


def effective_equipment_impairment(loss: float, codec: Codec = G711, burst: float = 1.0) -> float:
    """G.107 Ie,eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl), loss fraction 0..1."""
    ppl = 100.0 * min(max(loss, 0.0), 1.0)
    return codec.ie + (95 - codec.ie) * ppl / (ppl / burst + codec.bpl)


def r_factor(one_way: float, loss: float, codec: Codec = G711, burst: float = 1.0) -> float:
    """The transmission rating R for a one-way delay (s) and a loss fraction (0..1)."""
    return (
        RO_MINUS_IS - delay_impairment(one_way) - effective_equipment_impairment(loss, codec, burst)
    )


def mos_from_r(r: float) -> float:
    """G.107 Annex B: MOS_CQE = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6, within 1..4.5."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


def one_way_delay(rtt: float | None, jitter: float, codec: Codec = G711) -> float:
    """Mouth-to-ear delay estimate: half the RTT, the jitter buffer, the codec frame."""
    network = rtt / 2 if rtt is not None else 0.0
    buffer = max(JITTER_BUFFER_FACTOR * jitter, codec.delay)
    return network + buffer + codec.delay


def estimate_mos(
    loss: float,
    jitter: float,
    rtt: float | None,
    codec: Codec = G711_PLC,
    burst: float = 1.0,
) -> float:
    """The estimated MOS of a leg: loss fraction 0..1, jitter and RTT in seconds.

    Without an RTT (no RTCP from the phone) the network delay counts as zero,
    so the figure is then an upper bound on the delay side.
    """
    r = r_factor(one_way_delay(rtt, jitter, codec), loss, codec, burst)
    return mos_from_r(r)
