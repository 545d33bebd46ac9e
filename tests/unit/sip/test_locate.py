"""RFC 3263 / RFC 2782 decisions of pbx.sip.locate: no DNS, no clock of their own."""

from __future__ import annotations

import pytest

from pbx.sip.locate import (
    SrvRecord,
    TargetHealth,
    is_address,
    order_srv,
    srv_name,
    wants_srv,
)


@pytest.mark.parametrize(
    ("host", "port_given", "expected"),
    [
        ("carrier.example", False, True),
        ("carrier.example", True, False),  # RFC 3263 §4.2: a port means A/AAAA only
        ("192.0.2.10", False, False),
        ("[2001:db8::1]", False, False),
        ("2001:db8::1", False, False),
    ],
)
def test_srv_only_for_a_name_without_port(host: str, port_given: bool, expected: bool) -> None:
    assert wants_srv(host, port_given) is expected


def test_addresses_are_told_from_names() -> None:
    assert is_address("10.0.0.1") and is_address("[::1]")
    assert not is_address("sip.example") and not is_address("10.0.0.1.example")


def test_srv_record_names() -> None:
    assert srv_name("Carrier.Example.", "UDP") == "_sip._udp.carrier.example"
    assert srv_name("carrier.example", "tcp") == "_sip._tcp.carrier.example"
    assert srv_name("carrier.example", "TCP", secure=True) == "_sips._tcp.carrier.example"


def first(total: int) -> int:
    return 0


def last(total: int) -> int:
    return total


def test_lower_priority_first_whatever_the_weights() -> None:
    records = [SrvRecord(20, 100, 5060, "b"), SrvRecord(10, 1, 5060, "a"),
               SrvRecord(30, 0, 5060, "c")]  # fmt: skip
    assert [r.target for r in order_srv(records, last)] == ["a", "b", "c"]
    assert [r.target for r in order_srv(records, first)] == ["a", "b", "c"]


def test_weights_share_one_priority() -> None:
    records = [SrvRecord(10, 60, 5060, "heavy"), SrvRecord(10, 20, 5061, "light"),
               SrvRecord(10, 20, 5062, "light2")]  # fmt: skip
    # running sums 60, 80, 100: a draw of 70 picks "light", then of the rest (60, 80)...
    draws = iter([70, 80])
    ordered = order_srv(records, lambda total: next(draws))
    assert [r.target for r in ordered] == ["light", "light2", "heavy"]
    draws = iter([0, 0, 0])
    assert [r.target for r in order_srv(records, lambda t: next(draws))][0] == "heavy"


def test_weighted_draw_follows_the_weights() -> None:
    import random

    rng = random.Random(7)
    records = [SrvRecord(10, 75, 5060, "a"), SrvRecord(10, 25, 5060, "b")]
    firsts = [order_srv(records, lambda t: rng.randint(0, t))[0].target for _ in range(4000)]
    share = firsts.count("a") / len(firsts)
    assert 0.70 < share < 0.80  # RFC 2782: a server's share is its weight over the sum


def test_zero_weights_go_first_in_the_running_sum() -> None:
    records = [SrvRecord(10, 5, 5060, "weighted"), SrvRecord(10, 0, 5060, "zero")]
    assert order_srv(records, first)[0].target == "zero"  # a draw of 0 picks the 0-weight


def test_a_dot_target_means_no_service() -> None:
    assert order_srv([SrvRecord(0, 0, 0, ".")], first) == []


def test_health_moves_failed_targets_to_the_back_for_a_while() -> None:
    health = TargetHealth(down_seconds=30.0)
    a, b, c = ("192.0.2.1", 5060, "UDP"), ("192.0.2.2", 5060, "UDP"), ("192.0.2.3", 5060, "UDP")
    assert health.order([a, b, c], now=100.0) == [a, b, c]
    health.failed(a, now=100.0)
    assert health.order([a, b, c], now=110.0) == [b, c, a]
    health.failed(b, now=110.0)
    assert health.order([a, b, c], now=120.0) == [c, a, b]  # still tried, last
    assert health.order([a, b, c], now=131.0) == [a, c, b]  # a is back after 30 s
    assert health.order([a, b, c], now=141.0) == [a, b, c]
    assert not health.is_down(b, now=141.0)


def test_health_marks_are_bounded() -> None:
    health = TargetHealth()
    for index in range(3000):
        health.failed((f"10.0.{index // 250}.{index % 250}", 5060, "UDP"), now=float(index))
    assert len(health._until) <= 1024
