"""RTP port pairs: even/odd, round-robin reuse, exhaustion with a readable error."""

from __future__ import annotations

import pytest

from pbx.media.ports import PortAllocator, PortPair, PortsExhausted


def test_pairs_are_even_rtp_and_next_odd_rtcp() -> None:
    ports = PortAllocator(10000, 10009)
    assert ports.capacity == 5
    pairs = [ports.allocate() for _ in range(5)]
    assert pairs == [PortPair(10000 + 2 * i, 10001 + 2 * i) for i in range(5)]
    assert ports.in_use == 5


def test_odd_low_rounds_up_and_partial_pair_at_top_is_unused() -> None:
    ports = PortAllocator(10001, 10006)
    assert ports.capacity == 2
    assert [ports.allocate(), ports.allocate()] == [PortPair(10002, 10003), PortPair(10004, 10005)]
    with pytest.raises(PortsExhausted):
        ports.allocate()


def test_exhaustion_names_the_range() -> None:
    ports = PortAllocator(20000, 20003)
    ports.allocate()
    ports.allocate()
    with pytest.raises(PortsExhausted) as caught:
        ports.allocate()
    assert str(caught.value) == (
        "no free RTP port pair in 20000-20003: all 2 pairs are in use; "
        "widen the RTP port range or end some calls"
    )


def test_released_pair_is_reused_after_the_rest_of_the_range() -> None:
    ports = PortAllocator(10000, 10005)
    first, second, _third = (ports.allocate() for _ in range(3))
    ports.release(first)
    assert ports.allocate() == first  # the only free pair
    ports.release(second)
    ports.release(first)
    # cursor sits after `first`: `second` (next in order) comes before `first` again
    assert ports.allocate() == second
    assert ports.allocate() == first
    assert ports.in_use == 3


def test_round_robin_skips_pairs_in_use() -> None:
    ports = PortAllocator(10000, 10007)
    a, b, c, d = (ports.allocate() for _ in range(4))
    ports.release(b)
    ports.release(d)
    assert ports.allocate() == b
    assert ports.allocate() == d
    assert ports.owns(a.rtcp) and ports.owns(c.rtp)
    ports.release(c)
    assert not ports.owns(c.rtp)
    assert not ports.owns(9998)


@pytest.mark.parametrize(
    "pair", [PortPair(10001, 10002), PortPair(10002, 10004), PortPair(10002, 10003)]
)
def test_release_of_unallocated_pair_raises(pair: PortPair) -> None:
    ports = PortAllocator(10000, 10009)
    ports.allocate()
    with pytest.raises(ValueError, match="is not allocated here"):
        ports.release(pair)


@pytest.mark.parametrize(
    ("low", "high", "message"),
    [
        (80, 10000, "RTP port range 80-10000 must lie within 1024-65535, low <= high"),
        (10000, 9000, "RTP port range 10000-9000 must lie within 1024-65535, low <= high"),
        (10001, 10002, "RTP port range 10001-10002 holds no even/odd port pair"),
        (65535, 65535, "RTP port range 65535-65535 holds no even/odd port pair"),
    ],
)
def test_bad_ranges(low: int, high: int, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        PortAllocator(low, high)
    assert str(caught.value) == message
