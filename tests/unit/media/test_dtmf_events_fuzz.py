"""RFC 4733 receiver under random loss, duplication and local reordering (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.media.dtmf import (
    DIGITS,
    DtmfEnded,
    DtmfStarted,
    EventReceiver,
    TelephoneEvent,
    TelephoneEventError,
    event_packets,
)

presses = st.lists(
    st.tuples(st.sampled_from(DIGITS), st.integers(1, 8), st.integers(1, 4)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=100, deadline=None)
@given(presses=presses, data=st.data())
def test_each_press_reported_once_whatever_survives(presses, data) -> None:
    stream = []
    timestamp = 1000
    for digit, tenths, interval in presses:
        packets = event_packets(digit, timestamp, duration=tenths / 10, interval=interval / 50)
        kept = [p for p in packets if data.draw(st.booleans(), "keep")]
        if not kept:
            kept = [data.draw(st.sampled_from(packets), "survivor")]
        kept += [p for p in kept if data.draw(st.integers(0, 5), "dup") == 0]
        kept.sort(key=lambda p: p.offset)
        if len(kept) > 1 and data.draw(st.booleans(), "swap"):
            kept[0], kept[1] = kept[1], kept[0]
        stream.append((digit, timestamp, kept))
        timestamp += 8000 * tenths // 10 + 800

    rx = EventReceiver(timeout=0.5)
    events = []
    now = 0.0
    for _, _, kept in stream:
        for p in kept:
            now += 0.01
            events += rx.receive(p.marker, p.timestamp, p.payload, now)
    events += rx.expire(now + 1.0)

    starts = [e for e in events if isinstance(e, DtmfStarted)]
    ends = [e for e in events if isinstance(e, DtmfEnded)]
    assert [e.digit for e in starts] == [digit for digit, _, _ in stream]
    assert [e.timestamp for e in ends] == [ts for _, ts, _ in stream]
    for (_, _, kept), end in zip(stream, ends, strict=True):
        assert end.duration == max(p.event.duration for p in kept)
        assert end.lost_end == (not any(p.event.end for p in kept))


@given(st.binary(min_size=4, max_size=4))
def test_any_4_octets_round_trip(raw: bytes) -> None:
    assert bytes(TelephoneEvent.parse(raw)) == raw


@given(st.binary(max_size=3))
def test_short_payloads_raise_the_typed_error(raw: bytes) -> None:
    try:
        TelephoneEvent.parse(raw)
    except TelephoneEventError:
        return
    raise AssertionError("no error")
