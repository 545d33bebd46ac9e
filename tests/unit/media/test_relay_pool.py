"""Sans-socket parts of the relay's leg pool: the recycled-port guard and the allocator's books."""

from __future__ import annotations

import pytest

from pbx.media.ports import PortAllocator, PortPair, PortsExhausted
from pbx.media.relay_pool import LegPool
from pbx.media.relay_port import Retired, ssrc_of
from pbx.media.rtp import RtcpType, RtpPacket, build_rtcp

OLD = ("192.0.2.10", 4000)


def rtp_packet(ssrc: int) -> bytes:
    return bytes(RtpPacket(0, 1, 160, ssrc, b"\xff" * 160))


def test_ssrc_is_read_from_the_rtp_and_the_rtcp_header() -> None:
    assert ssrc_of(rtp_packet(0xCAFEBABE), rtcp=False) == bytes.fromhex("cafebabe")
    report = build_rtcp(RtcpType.RR, 0, 0xDEADBEEF.to_bytes(4, "big"))
    assert ssrc_of(report, rtcp=True) == bytes.fromhex("deadbeef")


@pytest.mark.parametrize(
    ("addr", "ssrc", "now", "refused"),
    [
        (OLD, 0x1234, 100.0, True),  # the previous call's stream, within the timeout
        (OLD, 0x1234, 104.999, True),
        (OLD, 0x1234, 105.0, False),  # latch_timeout has passed: forgotten
        (OLD, 0x9999, 100.0, False),  # same phone and port, a new stream (a new call)
        (("192.0.2.10", 4002), 0x1234, 100.0, False),  # another source
        (("192.0.2.11", 4000), 0x1234, 100.0, False),
    ],
)
def test_retired_refuses_only_the_previous_stream_until_it_expires(
    addr: tuple[str, int], ssrc: int, now: float, refused: bool
) -> None:
    retired = Retired(OLD, (0x1234).to_bytes(4, "big"), until=105.0)
    assert retired.refuses(addr, rtp_packet(ssrc), False, now) is refused


def test_allocator_parks_pairs_apart_from_those_in_use() -> None:
    ports = PortAllocator(20000, 20005)  # three pairs
    first, second = ports.allocate(), ports.allocate()
    ports.park(first)
    assert (ports.in_use, ports.parked) == (1, 1)
    assert ports.owns(first.rtp) and ports.owns(first.rtcp)
    third = ports.allocate()
    assert third == PortPair(20004, 20005)
    with pytest.raises(PortsExhausted):
        ports.allocate()  # a parked pair is not free
    ports.unpark(first)
    assert (ports.in_use, ports.parked) == (3, 0)
    ports.park(second)
    ports.release(second)  # a parked pair can be given back directly
    assert (ports.in_use, ports.parked) == (2, 0)
    assert not ports.owns(second.rtp)
    with pytest.raises(ValueError, match="20002/20003 is not parked"):
        ports.unpark(second)
    with pytest.raises(ValueError, match="20002/20003 is not in use"):
        ports.park(second)
    with pytest.raises(ValueError, match="20002/20003 is not allocated"):
        ports.release(second)
    with pytest.raises(ValueError, match="30000/30001 is not allocated"):
        ports.release(PortPair(30000, 30001))


def test_pool_size_is_checked_and_an_empty_pool_has_nothing_to_give() -> None:
    with pytest.raises(ValueError, match="pool must be >= 0"):
        LegPool(-1, PortAllocator(20000, 20009))
    pool = LegPool(0, PortAllocator(20000, 20009))
    assert pool.full and pool.take(2, "127.0.0.1", None) is None
