"""DNS for destinations given by name: RFC 3263 SRV location, off the loop's path, cached.

Why a module of its own: a trunk given as `carrier.example` used to be looked up with a
blocking getaddrinfo inside the event loop, which stalls every call's audio while a
resolver times out, and was never looked up again, so a carrier that moved its servers
saw its calls refused as unknown until a restart. Here every lookup is a task; answers
are kept for their DNS TTL (clamped) and served stale while a refresh runs, so a call
waits for DNS only the first time a name is used. The order of servers and the
back-of-the-line rule for failed ones are pbx.sip.locate's.

Lookups go through dnspython. With no `nameservers` given, SRV questions go to the
system's resolvers (resolv.conf, or the registry on Windows) and A/AAAA lookups through
getaddrinfo, so /etc/hosts and the system's own policies apply; with `nameservers`
(`serve --dns-server`), every question goes to them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pbx.sip.locate import SrvRecord, TargetHealth, is_address, order_srv, srv_name
from pbx.sip.transport import NextHop, strip_brackets

log = logging.getLogger(__name__)

MIN_TTL = 30.0
MAX_TTL = 3600.0
NEGATIVE_TTL = 30.0
"""Seconds a failed lookup (no such name, no answer, timeout) is remembered."""
ADDRESS_TTL = 60.0
"""Seconds a getaddrinfo answer is kept: it carries no TTL."""
LIFETIME = 4.0
"""Seconds one DNS question may take, retries included."""
REFRESH_INTERVAL = 15.0
MAX_ENTRIES = 1024

Query = Callable[[str, str], Awaitable[tuple[list[object], float] | None]]
"""(name, "SRV" | "A" | "AAAA") -> (records, TTL) or None when there is no answer."""


class DnsUnavailable(Exception):
    """No resolver configuration: SRV questions cannot be asked."""


@dataclass(frozen=True, slots=True)
class Question:
    host: str
    port: int
    transport: str
    srv: bool


@dataclass(slots=True)
class _Entry:
    targets: list[NextHop]
    expires: float

    @property
    def addresses(self) -> set[str]:
        return {t.host for t in self.targets}


def parse_nameserver(text: str) -> tuple[str, int]:
    """'192.0.2.53', '192.0.2.53:5353', '[2001:db8::53]:53' or '::1' -> (address, port)."""
    text = text.strip()
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), text)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, text)
    if not is_address(host):
        raise ValueError(f"bad DNS server {text!r}: expected an IP address with an optional port")
    return strip_brackets(host), port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"bad DNS server {whole!r}: the port must be 1 to 65535")
    return int(text)


class Locator:
    """Turns a NextHop naming a host into NextHops with addresses, in the order to try."""

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] = (),
        *,
        query: Query | None = None,
        clock: Callable[[], float] = time.monotonic,
        pick: Callable[[int], int] | None = None,
        reachable: Callable[[str, str], bool] = lambda address, transport: True,
    ) -> None:
        self.nameservers = tuple(nameservers)
        self.clock = clock
        self.pick = pick or (lambda total: random.randint(0, total))
        self.reachable = reachable
        self.health = TargetHealth()
        self.generation = 0
        """Moves whenever a name's addresses change (InboundGate re-reads on a move)."""
        self._query: Query = query or self._ask
        self._resolver: object | None = None
        # A/AAAA through the same questions when the servers are ours to name (or a test's);
        # else through getaddrinfo, which honours the hosts file and the system's policies
        self._all_by_query = bool(self.nameservers) or query is not None
        self._entries: dict[Question, _Entry] = {}
        self._running: dict[Question, asyncio.Task[_Entry]] = {}
        self._refresher: asyncio.Task[None] | None = None

    # --- what callers use ----------------------------------------------------------------

    def located(self, hop: NextHop) -> list[NextHop] | None:
        """Where `hop` goes now, best first; None when its name was never looked up (ask
        `locate`). An address is its own answer; a stale answer is served while a refresh
        runs (a stale "nothing" is not: the caller waits for the new answer); an empty list
        means the name has no usable address."""
        if is_address(hop.host):
            return [hop]
        question = _question(hop)
        entry = self._entries.get(question)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._start(question)
            if not entry.targets:
                return None
        return self._ordered(entry.targets)

    async def locate(self, hop: NextHop) -> list[NextHop]:
        found = self.located(hop)
        if found is not None:
            return found
        entry = await self._start(_question(hop))
        return self._ordered(entry.targets)

    def when_located(self, hop: NextHop, then: Callable[[list[NextHop]], None]) -> None:
        """Call `then(targets)` from the loop once `hop` is looked up (now, if it was)."""
        found = self.located(hop)
        if found is not None:
            then(found)
            return
        task = self._start(_question(hop))

        def done(finished: asyncio.Task[_Entry]) -> None:
            if finished.cancelled():
                return
            entry = finished.result()
            try:
                then(self._ordered(entry.targets))
            except Exception:  # the caller's fault must not vanish into the task
                log.exception("after looking up %s", hop.host)

        task.add_done_callback(done)

    def failed(self, target: NextHop) -> None:
        """`target` timed out, refused the connection or answered 503: try others first."""
        self.health.failed((target.host, target.port, target.transport), self.clock())

    def addresses(self, hop: NextHop) -> set[tuple[str, int]]:
        """The (address, port) of every server `hop` names now (SRV targets included);
        empty until the first lookup ends, which this starts. For recognising a carrier's
        requests by their source (pbx.inbound)."""
        if is_address(hop.host):
            return {(strip_brackets(hop.host), hop.port)}
        found = self.located(hop)
        if found is None:
            self._start(_question(hop))
            return set()
        return {(t.host, t.port) for t in found}

    def servers(self, hop: NextHop) -> list[dict[str, object]]:
        """`hop`'s servers as known now, in the order they are tried, each with whether it
        is passed over after a failure (for the status API); [] before the first lookup."""
        found = self.located(hop) or []
        now = self.clock()
        return [
            {"address": f"[{t.host}]:{t.port}" if ":" in t.host else f"{t.host}:{t.port}",
             "down": self.health.is_down((t.host, t.port, t.transport), now)}
            for t in found
        ]  # fmt: skip

    def start(self) -> None:
        """Refresh the names in use as their TTLs run out (from the running loop)."""
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def aclose(self) -> None:
        tasks = [t for t in (self._refresher, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refresher = None
        self._running.clear()

    def stats(self) -> dict[str, object]:
        now = self.clock()
        return {
            "names": len(self._entries),
            "lookups_running": len(self._running),
            "nameservers": [f"{h}:{p}" for h, p in self.nameservers],  # []: the system's
            "targets_down": sum(
                1 for e in self._entries.values() for t in e.targets
                if self.health.is_down((t.host, t.port, t.transport), now)
            ),
        }  # fmt: skip

    # --- lookups ------------------------------------------------------------------------

    def _ordered(self, targets: list[NextHop]) -> list[NextHop]:
        keys = [(t.host, t.port, t.transport) for t in targets]
        order = self.health.order(keys, self.clock())
        by_key = dict(zip(keys, targets, strict=True))
        return [by_key[k] for k in order]

    def _start(self, question: Question) -> asyncio.Task[_Entry]:
        task = self._running.get(question)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._lookup(question))
            self._running[question] = task
        return task

    async def _lookup(self, question: Question) -> _Entry:
        try:
            targets, ttl = await self._resolve(question)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a resolver bug must not leave a caller waiting forever
            log.warning("looking up %s failed: %s", question.host, exc)
            targets, ttl = [], NEGATIVE_TTL
        finally:
            self._running.pop(question, None)
        kept = [t for t in targets if self.reachable(t.host, t.transport)] or targets
        entry = _Entry(kept, self.clock() + ttl)
        before = self._entries.get(question)
        if before is None or before.addresses != entry.addresses:
            self.generation += 1
            shown = ", ".join(f"{t.host}:{t.port}" for t in kept)
            srv = " (SRV)" if question.srv else ""
            if shown:
                log.info("%s%s is %s", question.host, srv, shown)
            else:
                log.info("%s%s has no address", question.host, srv)
        if len(self._entries) >= MAX_ENTRIES and question not in self._entries:
            self._entries.clear()
        self._entries[question] = entry
        return entry

    async def _resolve(self, question: Question) -> tuple[list[NextHop], float]:
        """RFC 3263 §4.2: SRV records when asked for, else (or when there are none) the
        host's own addresses on the given port."""
        if question.srv:
            name = srv_name(question.host, question.transport)
            answer = await self._query(name, "SRV")
            if answer is not None:
                records, ttl = answer
                ordered = order_srv([r for r in records if isinstance(r, SrvRecord)], self.pick)
                found = await asyncio.gather(*(self._addresses(r.target) for r in ordered))
                targets = [
                    NextHop(address, record.port, question.transport)
                    for record, (addresses, _) in zip(ordered, found, strict=True)
                    for address in addresses
                ]
                return targets, _clamp(min([ttl, *(t for _, t in found)]))
        addresses, ttl = await self._addresses(question.host)
        return [NextHop(a, question.port, question.transport) for a in addresses], _clamp(ttl)

    async def _addresses(self, host: str) -> tuple[list[str], float]:
        if is_address(host):
            return [strip_brackets(host)], MAX_TTL
        if self._all_by_query:
            answers = await asyncio.gather(self._query(host, "A"), self._query(host, "AAAA"))
            found = [str(a) for answer in answers if answer is not None for a in answer[0]]
            ttls = [answer[1] for answer in answers if answer is not None]
            return found, (min(ttls) if ttls else NEGATIVE_TTL)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.info("cannot resolve %s: %s", host, exc)
            return [], NEGATIVE_TTL
        return list(dict.fromkeys(str(info[4][0]) for info in infos)), ADDRESS_TTL

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            now = self.clock()
            for question, entry in list(self._entries.items()):
                if entry.expires <= now:
                    self._start(question)

    # --- dnspython ----------------------------------------------------------------------

    def _make_resolver(self) -> object:
        import dns.asyncresolver
        import dns.nameserver
        import dns.resolver

        if self.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(host, port) for host, port in self.nameservers
            ]
            return resolver
        try:
            return dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise DnsUnavailable("no DNS servers configured on this system") from exc

    async def _ask(self, name: str, rdtype: str) -> tuple[list[object], float] | None:
        import dns.exception

        try:
            if self._resolver is None:
                self._resolver = self._make_resolver()
        except DnsUnavailable as exc:
            log.warning("%s: SRV lookups are off", exc)
            return None
        try:
            answer = await self._resolver.resolve(  # type: ignore[attr-defined]
                name, rdtype, lifetime=LIFETIME, search=False
            )
        except dns.exception.DNSException as exc:
            log.debug("%s %s: %s", name, rdtype, exc)
            return None
        ttl = float(answer.rrset.ttl) if answer.rrset is not None else NEGATIVE_TTL
        if rdtype == "SRV":
            records: list[object] = [
                SrvRecord(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True))
                for r in answer
            ]
        else:
            records = [r.address for r in answer]
        return records, ttl


def _question(hop: NextHop) -> Question:
    return Question(hop.host.lower(), hop.port, hop.transport.upper(), hop.srv)


def _clamp(ttl: float) -> float:
    return max(MIN_TTL, min(MAX_TTL, ttl))
