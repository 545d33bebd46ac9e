"""pbx.net.dns.Locator with a fake DNS (a dict of answers) and a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from pbx.net.dns import MIN_TTL, NEGATIVE_TTL, Locator, parse_nameserver
from pbx.sip.locate import SrvRecord
from pbx.sip.transport import NextHop


class FakeDns:
    """Answers from a table; counts questions; `gate` holds answers back until set."""

    def __init__(self, table: dict[tuple[str, str], tuple[list[object], float]]) -> None:
        self.table = table
        self.asked: list[tuple[str, str]] = []
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self, name: str, rdtype: str) -> tuple[list[object], float] | None:
        self.asked.append((name, rdtype))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("resolver exploded")
        return self.table.get((name, rdtype))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


CARRIER = {
    ("_sip._udp.carrier.test", "SRV"): (
        [
            SrvRecord(20, 0, 5080, "backup.carrier.test"),
            SrvRecord(10, 0, 5070, "main.carrier.test"),
        ],
        300.0,
    ),
    ("main.carrier.test", "A"): (["192.0.2.10"], 600.0),
    ("backup.carrier.test", "A"): (["192.0.2.20"], 600.0),
    ("backup.carrier.test", "AAAA"): (["2001:db8::20"], 600.0),
    ("plain.test", "A"): (["192.0.2.30"], 120.0),
}
SRV_HOP = NextHop("carrier.test", 5060, "UDP", srv=True)


def locator(dns: FakeDns, clock: Clock, **kw: object) -> Locator:
    return Locator(query=dns, clock=clock, pick=lambda total: 0, **kw)  # type: ignore[arg-type]


async def test_srv_targets_in_priority_order_with_their_ports() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    loc = locator(dns, clock)
    assert loc.located(SRV_HOP) is None  # never looked up: the caller must wait
    targets = await loc.locate(SRV_HOP)
    assert [(t.host, t.port, t.transport) for t in targets] == [
        ("192.0.2.10", 5070, "UDP"), ("192.0.2.20", 5080, "UDP"), ("2001:db8::20", 5080, "UDP"),
    ]  # fmt: skip
    assert not any(t.srv for t in targets)
    assert loc.located(SRV_HOP) == targets  # from the cache now, no await


async def test_no_srv_records_fall_back_to_the_host_on_the_given_port() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    loc = locator(dns, clock)
    targets = await loc.locate(NextHop("plain.test", 5090, "UDP", srv=True))
    assert [(t.host, t.port) for t in targets] == [("192.0.2.30", 5090)]
    assert ("_sip._udp.plain.test", "SRV") in dns.asked


async def test_a_port_means_no_srv_question() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    targets = await locator(dns, clock).locate(NextHop("plain.test", 5090, "TCP"))
    assert [(t.host, t.port, t.transport) for t in targets] == [("192.0.2.30", 5090, "TCP")]
    assert all(rdtype != "SRV" for _, rdtype in dns.asked)


async def test_an_address_needs_no_dns() -> None:
    dns, clock = FakeDns({}), Clock()
    hop = NextHop("192.0.2.99", 5060, "UDP")
    assert locator(dns, clock).located(hop) == [hop]
    assert dns.asked == []


async def test_answers_are_kept_for_their_ttl_then_refreshed_in_the_background() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    loc = locator(dns, clock)
    await loc.locate(SRV_HOP)
    asked = len(dns.asked)
    clock.now += 299.0
    assert loc.located(SRV_HOP) is not None
    await asyncio.sleep(0)
    assert len(dns.asked) == asked  # within the TTL (the SRV's 300 s): no question
    CARRIER_MOVED = dict(CARRIER)
    CARRIER_MOVED[("main.carrier.test", "A")] = (["192.0.2.11"], 600.0)
    dns.table = CARRIER_MOVED
    generation = loc.generation
    clock.now += 2.0
    stale = loc.located(SRV_HOP)
    assert stale is not None and stale[0].host == "192.0.2.10"  # served stale at once ...
    for _ in range(20):
        await asyncio.sleep(0)
    fresh = loc.located(SRV_HOP)
    assert fresh is not None and fresh[0].host == "192.0.2.11"  # ... refreshed behind
    assert loc.generation == generation + 1


async def test_short_ttls_are_clamped() -> None:
    table = {("tiny.test", "A"): (["192.0.2.40"], 1.0)}
    dns, clock = FakeDns(table), Clock()
    loc = locator(dns, clock)
    await loc.locate(NextHop("tiny.test", 5060, "UDP"))
    asked = len(dns.asked)
    clock.now += MIN_TTL - 1
    loc.located(NextHop("tiny.test", 5060, "UDP"))
    await asyncio.sleep(0)
    assert len(dns.asked) == asked


async def test_unknown_names_are_remembered_briefly() -> None:
    dns, clock = FakeDns({}), Clock()
    loc = locator(dns, clock)
    hop = NextHop("nowhere.test", 5060, "UDP", srv=True)
    assert await loc.locate(hop) == []
    asked = len(dns.asked)
    assert loc.located(hop) == []
    await asyncio.sleep(0)
    assert len(dns.asked) == asked
    clock.now += NEGATIVE_TTL + 1
    assert loc.located(hop) is None  # a stale "nothing": wait for the new answer
    dns.table = dict(CARRIER)
    dns.table[("nowhere.test", "A")] = (["192.0.2.50"], 60.0)
    assert [t.host for t in await loc.locate(hop)] == ["192.0.2.50"]
    assert len(dns.asked) > asked  # asked again after the negative TTL


async def test_concurrent_callers_share_one_lookup() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    dns.gate = asyncio.Event()
    loc = locator(dns, clock)
    seen: list[list[NextHop]] = []
    loc.when_located(SRV_HOP, seen.append)
    loc.when_located(SRV_HOP, seen.append)
    waiting = asyncio.ensure_future(loc.locate(SRV_HOP))
    await asyncio.sleep(0)
    assert dns.asked == [("_sip._udp.carrier.test", "SRV")]  # one question in flight
    dns.gate.set()
    targets = await waiting
    assert seen == [targets, targets]
    assert dns.asked.count(("_sip._udp.carrier.test", "SRV")) == 1


async def test_when_located_calls_back_at_once_from_the_cache() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    loc = locator(dns, clock)
    await loc.locate(SRV_HOP)
    seen: list[list[NextHop]] = []
    loc.when_located(SRV_HOP, seen.append)
    assert len(seen) == 1  # synchronously: no task, no wait


async def test_a_failed_server_goes_to_the_back_until_it_recovers() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    loc = locator(dns, clock)
    first, second, third = await loc.locate(SRV_HOP)
    loc.failed(first)
    assert loc.located(SRV_HOP) == [second, third, first]
    assert loc.stats()["targets_down"] == 1
    assert loc.servers(SRV_HOP) == [
        {"address": "192.0.2.20:5080", "down": False},
        {"address": "[2001:db8::20]:5080", "down": False},
        {"address": "192.0.2.10:5070", "down": True},
    ]
    clock.now += 31.0
    assert loc.located(SRV_HOP) == [first, second, third]


async def test_unreachable_families_are_left_out_unless_nothing_else_remains() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    ipv4_only = locator(dns, clock, reachable=lambda address, transport: ":" not in address)
    targets = await ipv4_only.locate(SRV_HOP)
    assert [t.host for t in targets] == ["192.0.2.10", "192.0.2.20"]
    nothing = locator(FakeDns(CARRIER), clock, reachable=lambda address, transport: False)
    assert len(await nothing.locate(SRV_HOP)) == 3


async def test_addresses_for_the_inbound_gate_start_a_lookup() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    loc = locator(dns, clock)
    assert loc.addresses(SRV_HOP) == set()  # not known yet; a lookup starts
    before = loc.generation
    for _ in range(20):
        await asyncio.sleep(0)
    assert loc.addresses(SRV_HOP) == {
        ("192.0.2.10", 5070), ("192.0.2.20", 5080), ("2001:db8::20", 5080),
    }  # fmt: skip
    assert loc.generation > before
    assert loc.addresses(NextHop("[::1]", 5070, "UDP")) == {("::1", 5070)}


async def test_a_resolver_failure_is_an_empty_answer_not_a_hang() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    dns.fail = True
    assert await locator(dns, clock).locate(SRV_HOP) == []


async def test_close_cancels_lookups_in_flight() -> None:
    dns, clock = FakeDns(CARRIER), Clock()
    dns.gate = asyncio.Event()
    loc = locator(dns, clock)
    loc.start()
    seen: list[list[NextHop]] = []
    loc.when_located(SRV_HOP, seen.append)
    await asyncio.sleep(0)
    await loc.aclose()
    assert seen == [] and loc.stats()["lookups_running"] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("192.0.2.53", ("192.0.2.53", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
     ("[2001:db8::53]:5300", ("2001:db8::53", 5300)), ("::1", ("::1", 53))],
)  # fmt: skip
def test_dns_server_option(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1]:99999"])
def test_bad_dns_server_option(text: str) -> None:
    with pytest.raises(ValueError, match="bad DNS server"):
        parse_nameserver(text)
