"""Which servers a request to a domain goes to, and in what order (RFC 3263 §4, RFC 2782).

A carrier usually publishes its SIP servers as DNS SRV records rather than one address:
`_sip._udp.carrier.example` lists hosts with a priority (lower first) and a weight (the
share of load among equal priorities). Asterisk, FreeSWITCH and 3CX look these up for a
trunk given by domain name, so a DeskPBX trunk must too. The decisions live here, with no
I/O and no clock of their own, so they can be table-tested: whether a destination needs
an SRV lookup at all, the record name to ask for, the RFC 2782 order of the answer, and
which targets recently failed and go to the back of the line (RFC 3263 §4.3: "the client
SHOULD try the next element"). The lookups themselves are pbx.net.dns's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

DOWN_SECONDS = 30.0
"""How long a target that failed (timeout, transport error, 503) goes to the back."""

MAX_MARKS = 1024


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV answer (RFC 2782): `target` "." means "no such service here"."""

    priority: int
    weight: int
    port: int
    target: str


def is_address(host: str) -> bool:
    """True for an IPv4 or IPv6 literal (brackets allowed): no DNS for it."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def wants_srv(host: str, port_given: bool) -> bool:
    """RFC 3263 §4.2: SRV only for a domain name whose URI names no port."""
    return not port_given and not is_address(host)


def srv_name(domain: str, transport: str, secure: bool = False) -> str:
    """The SRV record to ask for: `_sip._udp.DOMAIN`, `_sip._tcp.DOMAIN` or `_sips._tcp`."""
    domain = domain.rstrip(".").lower()
    if secure:
        return f"_sips._tcp.{domain}"
    proto = "udp" if transport.upper() == "UDP" else "tcp"
    return f"_sip._{proto}.{domain}"


def order_srv(records: Iterable[SrvRecord], pick: Callable[[int], int]) -> list[SrvRecord]:
    """The records in the order to try them (RFC 2782, "Usage rules").

    Lowest priority first; within a priority, a weighted random draw repeated until none is
    left: weight-0 records first in the running sum, `pick(total)` a uniform integer in
    0..total (random.randint(0, total) in service, fixed in tests). One record "." means
    the domain decidedly has no such service: empty list.
    """
    found = [r for r in records if r.target not in (".", "")]
    by_priority: dict[int, list[SrvRecord]] = {}
    for record in found:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[SrvRecord] = []
    for priority in sorted(by_priority):
        pool = sorted(by_priority[priority], key=lambda r: r.weight != 0)
        while len(pool) > 1:
            total = sum(r.weight for r in pool)
            threshold = pick(total)
            running = 0
            for index, record in enumerate(pool):
                running += record.weight
                if running >= threshold:
                    ordered.append(pool.pop(index))
                    break
            else:  # pick() out of range: take the last (never with a well-behaved pick)
                ordered.append(pool.pop())
        ordered += pool
    return ordered


TargetKey = tuple[str, int, str]
"""(address, port, transport) of one server."""


class TargetHealth:
    """Targets that failed recently, by (address, port, transport), and until when."""

    def __init__(self, down_seconds: float = DOWN_SECONDS) -> None:
        self.down_seconds = down_seconds
        self._until: dict[TargetKey, float] = {}

    def failed(self, target: TargetKey, now: float) -> None:
        if len(self._until) >= MAX_MARKS:
            self._until = {k: t for k, t in self._until.items() if t > now}
            if len(self._until) >= MAX_MARKS:
                self._until.clear()
        self._until[target] = now + self.down_seconds

    def is_down(self, target: TargetKey, now: float) -> bool:
        until = self._until.get(target)
        if until is None:
            return False
        if until <= now:
            del self._until[target]
            return False
        return True

    def order(self, targets: Sequence[TargetKey], now: float) -> list[TargetKey]:
        """`targets` with those down moved to the back, each group in its own order: a
        target that failed is still tried when every other one has failed too."""
        up = [t for t in targets if not self.is_down(t, now)]
        return up + [t for t in targets if t not in up]
