"""RFC 4733 telephone-events: payload format, sender schedule, receiver dedupe and loss."""

from __future__ import annotations

import pytest

from pbx.media.dtmf import (
    DtmfEnded,
    DtmfStarted,
    EventReceiver,
    TelephoneEvent,
    TelephoneEventError,
    digit_to_event,
    event_packets,
    event_to_digit,
)


def test_payload_round_trip_bytes_exact() -> None:
    # RFC 4733 §2.3: event 5, E=1, R=0, volume 10, duration 800.
    raw = bytes([0x05, 0x8A, 0x03, 0x20])
    event = TelephoneEvent.parse(raw)
    assert event == TelephoneEvent(event=5, end=True, volume=10, duration=800)
    assert bytes(event) == raw
    assert event.digit == "5"


def test_reserved_bit_and_max_fields_round_trip() -> None:
    raw = bytes([0x10, 0x7F, 0xFF, 0xFF])
    event = TelephoneEvent.parse(raw)
    assert (event.event, event.end, event.reserved, event.volume, event.duration) == (
        16,
        False,
        True,
        63,
        65535,
    )
    assert bytes(event) == raw
    assert event.digit is None  # flash


def test_parse_takes_the_first_block_of_a_longer_payload() -> None:
    assert TelephoneEvent.parse(bytes([11, 0x0A, 0, 160, 12, 0x8A, 1, 64])).digit == "#"


@pytest.mark.parametrize("raw", [b"", b"\x01", b"\x01\x02\x03"])
def test_short_payload_is_an_error_with_the_length(raw: bytes) -> None:
    with pytest.raises(TelephoneEventError, match=f"payload of {len(raw)} bytes, needs 4"):
        TelephoneEvent.parse(raw)


def test_unbuildable_fields_are_refused() -> None:
    with pytest.raises(TelephoneEventError, match="volume 64"):
        bytes(TelephoneEvent(1, volume=64))
    with pytest.raises(TelephoneEventError, match="duration 65536"):
        bytes(TelephoneEvent(1, duration=65536))


def test_digit_codes_follow_rfc4733_section_3_2() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("b") == 13
    assert [event_to_digit(e) for e in (0, 9, 10, 11, 15, 16, 200)] == [
        "0",
        "9",
        "*",
        "#",
        "D",
        None,
        None,
    ]
    with pytest.raises(TelephoneEventError, match="not a DTMF digit: 'X'"):
        digit_to_event("X")


def test_sender_schedule_start_updates_three_ends() -> None:
    packets = event_packets("7", timestamp=1000, duration=0.2, interval=0.05, volume=12)
    assert [p.offset for p in packets] == [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert {p.timestamp for p in packets} == {1000}
    assert [p.event.duration for p in packets] == [400, 800, 1200, 1600, 1600, 1600, 1600]
    assert [p.event.end for p in packets] == [False] * 4 + [True] * 3
    assert (
        packets[-1].payload
        == packets[-2].payload
        == packets[-3].payload
        == bytes([7, 0x80 | 12, 0x06, 0x40])
    )


def test_sender_packetization_is_configurable_and_caps_duration() -> None:
    packets = event_packets("#", timestamp=0xFFFFFFFF + 5, duration=0.09, interval=0.02)
    updates = [p for p in packets if not p.event.end]
    assert [p.event.duration for p in updates] == [160, 320, 480, 640, 720]
    assert packets[0].timestamp == 4  # wrapped to 32 bits
    assert len(packets) == 8


def test_sender_refuses_events_that_need_segments() -> None:
    with pytest.raises(TelephoneEventError, match="needs segmenting"):
        event_packets("1", 0, duration=9.0)


def feed(receiver: EventReceiver, packets, now: float = 0.0) -> list:
    out = []
    for i, p in enumerate(packets):
        out += receiver.receive(p.marker, p.timestamp, p.payload, now + p.offset + i * 1e-6)
    return out


def test_receiver_reports_one_start_and_one_end_per_key_press() -> None:
    rx = EventReceiver()
    events = feed(rx, event_packets("9", 320, duration=0.15))
    assert events == [
        DtmfStarted("9", 9, 320),
        DtmfEnded("9", 9, 320, 1200, lost_end=False),
    ]


def test_retransmitted_end_after_next_event_started_is_ignored() -> None:
    rx = EventReceiver()
    first = event_packets("1", 100, duration=0.1)
    second = event_packets("2", 2000, duration=0.1)
    events = feed(rx, first[:-1]) + feed(rx, second[:1], 1.0) + feed(rx, first[-1:], 1.1)
    events += feed(rx, second[1:], 1.2)
    assert [type(e).__name__ + (e.digit or "") for e in events] == [
        "DtmfStarted1",
        "DtmfEnded1",
        "DtmfStarted2",
        "DtmfEnded2",
    ]


def test_lost_start_packets_still_start_the_event() -> None:
    rx = EventReceiver()
    packets = event_packets("*", 5000, duration=0.2)
    events = feed(rx, packets[2:])  # start with marker and first update lost
    assert events[0] == DtmfStarted("*", 10, 5000)
    assert events[1] == DtmfEnded("*", 10, 5000, 1600, lost_end=False)
    assert len(events) == 2


def test_only_an_end_packet_arriving_gives_start_and_end() -> None:
    rx = EventReceiver()
    last = event_packets("0", 77, duration=0.1)[-1]
    assert rx.receive(False, 77, last.payload, 3.0) == [
        DtmfStarted("0", 0, 77),
        DtmfEnded("0", 0, 77, 800, lost_end=False),
    ]


def test_lost_end_packets_end_the_event_when_the_next_begins() -> None:
    rx = EventReceiver()
    first = [p for p in event_packets("4", 0, duration=0.1) if not p.event.end]
    events = feed(rx, first) + feed(rx, event_packets("5", 4000, duration=0.1)[:1], 2.0)
    assert events == [
        DtmfStarted("4", 4, 0),
        DtmfEnded("4", 4, 0, 800, lost_end=True),
        DtmfStarted("5", 5, 4000),
    ]


def test_lost_end_packets_end_the_event_after_timeout() -> None:
    rx = EventReceiver(timeout=0.5)
    rx.receive(True, 10, bytes(TelephoneEvent(3, duration=400)), now=10.0)
    assert rx.next_deadline() == 10.5
    assert rx.expire(10.49) == []
    assert rx.expire(10.5) == [DtmfEnded("3", 3, 10, 400, lost_end=True)]
    assert rx.next_deadline() is None
    # a straggler of the expired event does not start it again
    assert rx.receive(False, 10, bytes(TelephoneEvent(3, duration=480)), now=10.6) == []


def test_reordered_update_does_not_shrink_duration() -> None:
    rx = EventReceiver()
    rx.receive(True, 0, bytes(TelephoneEvent(1, duration=800)), 0.0)
    rx.receive(False, 0, bytes(TelephoneEvent(1, duration=400)), 0.01)
    assert rx.receive(False, 0, bytes(TelephoneEvent(1, end=True, duration=640)), 0.02) == [
        DtmfEnded("1", 1, 0, 800)
    ]
