"""Store queries for trunks, outbound routes, DIDs and ring groups (the trunks-and-routing issue).

A mixin of `pbx.store.Store`: methods here use the store's `_transaction()`
and `_rows()` and return typed rows, so `Store` stays the only SQL writer.
The row types live here too (Trunk, Route, Did, RingGroup) so this feature
touches no shared file. A trunk's password is kept out of `repr()`; callers
that print a trunk show `password_set` instead.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from pbx.store.errors import InvalidValue, StoreError
from pbx.store.mixin import StoreMixin
from pbx.store.rows import PermissionClass, RecordPolicy, parse_enum

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
DID_RE = re.compile(r"\+?[0-9]{1,20}|s")
TRANSPORTS = ("UDP", "TCP")


class Strategy(enum.Enum):
    """How a route's trunk group spreads calls (FreePBX trunk sequence, Kamailio dispatcher)."""

    PRIORITY = "priority"
    ROUND_ROBIN = "round-robin"
    LEAST_BUSY = "least-busy"


class TargetKind(enum.Enum):
    """Where an inbound DID rings."""

    EXTENSION = "extension"
    GROUP = "group"
    SOFTPHONE = "softphone"


class RingStrategy(enum.Enum):
    """A ring group rings all members at once, or one after another with a timeout each."""

    ALL = "all"
    ORDER = "order"


class TrunkStatus(enum.Enum):
    """The outcome of the last OPTIONS qualify (unknown until the first answer)."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


class DuplicateItem(StoreError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name} already exists")


class UnknownItem(StoreError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"no {kind} {name}")


TRUNK_FLAGS = ("register", "enabled", "qualify", "send_pai", "pass_x_headers", "srv")
"""The trunk columns SQLite stores as 0/1."""


@dataclass(frozen=True, slots=True)
class Trunk:
    """A SIP trunk to a carrier. `domain` is the host part of the Request-URI
    (defaults to `host`); `max_calls` 0 means no cap."""

    name: str
    host: str
    port: int = 5060
    transport: str = "UDP"
    domain: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    register: bool = False
    expiry: int = 3600
    outbound_proxy: str = ""
    caller_id: str = ""
    prefix: str = ""
    max_calls: int = 0
    enabled: bool = True
    qualify: bool = True
    send_pai: bool = False
    pass_x_headers: bool = False
    srv: bool = False
    """Find the carrier's servers through DNS SRV records for `host` (RFC 3263), `port`
    being the fallback when it publishes none; pbx.net.dns."""
    match_networks: str = ""
    """Addresses and networks (comma-separated IPs or CIDRs) the carrier's calls come from
    besides its host, as Asterisk's `identify match=`: carriers publish signalling ranges."""
    status: TrunkStatus = TrunkStatus.UNKNOWN
    status_at: float = 0.0
    created: float = 0.0

    @property
    def password_set(self) -> bool:
        return bool(self.password)

    @property
    def uri_domain(self) -> str:
        return self.domain or self.host

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Trunk:
        values = dict(row)
        for flag in TRUNK_FLAGS:
            values[flag] = bool(values[flag])
        values["status"] = TrunkStatus(values["status"])
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["status"] = self.status.value
        for flag in TRUNK_FLAGS:
            row[flag] = int(row[flag])
        return row


@dataclass(frozen=True, slots=True)
class Route:
    """An outbound route: the first route (lowest position) whose pattern matches wins."""

    name: str
    patterns: tuple[str, ...]
    trunks: tuple[str, ...]
    strip: int = 0
    prepend: str = ""
    caller_id: str = ""
    permission: PermissionClass = PermissionClass.NATIONAL
    strategy: Strategy = Strategy.PRIORITY
    position: int = 0
    record_policy: RecordPolicy = RecordPolicy.NEVER


@dataclass(frozen=True, slots=True)
class RingGroup:
    number: str
    members: tuple[str, ...]
    name: str = ""
    strategy: RingStrategy = RingStrategy.ALL
    ring_timeout: int = 20


@dataclass(frozen=True, slots=True)
class Did:
    """An inbound number; `trunk` limits it to calls from that trunk (None: any trunk)."""

    number: str
    target_kind: TargetKind
    target: str = ""
    trunk: str | None = None


TRUNK_COLUMNS = tuple(f.name for f in fields(Trunk))


def validate_trunk(trunk: Trunk) -> Trunk:
    """The trunk with its transport upper-cased, or InvalidValue naming the bad field."""
    if not NAME_RE.fullmatch(trunk.name):
        raise InvalidValue(f"bad trunk name {trunk.name!r}: letters, digits, '-', '_', '.'")
    if not trunk.host or any(c in trunk.host for c in " <>;@\"'"):
        raise InvalidValue(f"bad trunk host {trunk.host!r}")
    if not 1 <= trunk.port <= 65535:
        raise InvalidValue(f"bad trunk port {trunk.port}: 1 to 65535")
    transport = trunk.transport.upper()
    if transport not in TRANSPORTS:
        raise InvalidValue(f"bad transport {trunk.transport!r}: UDP or TCP")
    if trunk.max_calls < 0:
        raise InvalidValue("max calls must be 0 (no cap) or more")
    if not 60 <= trunk.expiry <= 86400:
        raise InvalidValue("registration expiry must be 60 to 86400 seconds")
    if trunk.prefix and not re.fullmatch(r"[0-9*#+]*", trunk.prefix):
        raise InvalidValue(f"bad number prefix {trunk.prefix!r}")
    if trunk.register and not trunk.username:
        raise InvalidValue("a trunk that registers needs a username")
    try:
        networks = ",".join(str(n) for n in parse_networks(trunk.match_networks))
    except ValueError as exc:
        raise InvalidValue(str(exc)) from None
    return replace(trunk, transport=transport, match_networks=networks)


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """'203.0.113.0/24, 198.51.100.7' -> networks (an address is a /32 or /128 of its own)."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
        except ValueError:
            raise ValueError(f"bad match network {item!r}: an IP address or CIDR") from None
    return networks


class TrunkQueries(StoreMixin):
    """Mixed into Store."""

    if TYPE_CHECKING:
        _conn: sqlite3.Connection
        _lock: threading.RLock

        def _current_data_version(self) -> int: ...

    _trunk_writes = 0  # our own trunk writes (PRAGMA data_version does not see them)

    # -- trunks -----------------------------------------------------------------------------

    def trunks_version(self) -> tuple[int, int]:
        """A value that changes whenever the trunk rows may have changed, read without
        touching them: SQLite's PRAGMA data_version moves when another connection (`deskpbx
        trunk add` in another process) commits, and our own trunk writes are counted here.
        The inbound gate re-reads its trunk table only when it moves (no statement at all
        while the wal-index shows no commit, instead of a SELECT and a row decode per trunk)."""
        return self._current_data_version(), self._trunk_writes

    def _trunks_changed(self) -> None:
        self._trunk_writes += 1

    def add_trunk(self, trunk: Trunk) -> Trunk:
        trunk = validate_trunk(trunk)
        row = trunk.to_row()
        columns = ", ".join(row)
        try:
            with self._transaction() as conn:
                conn.execute(
                    f"INSERT INTO trunks ({columns}) VALUES ({', '.join(':' + c for c in row)})",
                    row,
                )
        except sqlite3.IntegrityError:
            raise DuplicateItem("trunk", trunk.name) from None
        finally:
            self._trunks_changed()
        return trunk

    def find_trunk(self, name: str) -> Trunk | None:
        rows = self._rows("trunks", "name = ?", [name])
        return Trunk.from_row(rows[0]) if rows else None

    def get_trunk(self, name: str) -> Trunk:
        trunk = self.find_trunk(name)
        if trunk is None:
            raise UnknownItem("trunk", name)
        return trunk

    def list_trunks(self) -> list[Trunk]:
        return [Trunk.from_row(r) for r in self._rows("trunks", order_by="name")]

    def update_trunk(self, name: str, **changes: Any) -> Trunk:
        """Change the given fields (Trunk field names) of a trunk."""
        bad = sorted(set(changes) - set(TRUNK_COLUMNS[1:]))
        if bad:
            raise InvalidValue(f"cannot change {', '.join(bad)} of a trunk")
        updated = validate_trunk(replace(self.get_trunk(name), **changes))
        row = updated.to_row()
        try:
            with self._transaction() as conn:
                assignments = ", ".join(f"{c} = :{c}" for c in changes)
                conn.execute(f"UPDATE trunks SET {assignments} WHERE name = :name", row)
        finally:
            self._trunks_changed()
        return updated

    def remove_trunk(self, name: str) -> None:
        try:
            with self._transaction() as conn:
                cursor = conn.execute("DELETE FROM trunks WHERE name = ?", (name,))
        finally:
            self._trunks_changed()
        if cursor.rowcount == 0:
            raise UnknownItem("trunk", name)

    def set_trunk_status(self, name: str, status: TrunkStatus, now: float) -> bool:
        """Record a qualify outcome at `now` (epoch s); False if the trunk is gone."""
        try:
            with self._transaction() as conn:
                cursor = conn.execute(
                    "UPDATE trunks SET status = ?, status_at = ? WHERE name = ?",
                    (status.value, now, name),
                )
        finally:
            self._trunks_changed()
        return cursor.rowcount > 0

    # -- routes -----------------------------------------------------------------------------

    def add_route(self, route: Route) -> Route:
        """Append a route after the existing ones (its position is ignored)."""
        if not NAME_RE.fullmatch(route.name):
            raise InvalidValue(f"bad route name {route.name!r}")
        if not route.patterns:
            raise InvalidValue("a route needs at least one pattern")
        if route.strip < 0:
            raise InvalidValue("digits to strip must be 0 or more")
        route = replace(
            route,
            permission=parse_enum(PermissionClass, route.permission, "permission class"),
            strategy=parse_enum(Strategy, route.strategy, "strategy"),
            record_policy=parse_enum(RecordPolicy, route.record_policy, "record policy"),
        )
        try:
            with self._transaction() as conn:
                for trunk in route.trunks:
                    if not conn.execute("SELECT 1 FROM trunks WHERE name = ?", (trunk,)).fetchone():
                        raise UnknownItem("trunk", trunk)
                (count,) = conn.execute("SELECT count(*) FROM routes").fetchone()
                route = replace(route, position=int(count) + 1)
                conn.execute(
                    "INSERT INTO routes (name, position, patterns, strip, prepend, caller_id, "
                    "permission, strategy, record_policy) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (route.name, route.position, "\n".join(route.patterns), route.strip,
                     route.prepend, route.caller_id, route.permission.value,
                     route.strategy.value, route.record_policy.value),
                )  # fmt: skip
                conn.executemany(
                    "INSERT INTO route_trunks (route, trunk, position) VALUES (?, ?, ?)",
                    [(route.name, t, i) for i, t in enumerate(route.trunks)],
                )
        except sqlite3.IntegrityError:
            raise DuplicateItem("route", route.name) from None
        return route

    def list_routes(self) -> list[Route]:
        """Routes in matching order."""
        members: dict[str, list[str]] = {}
        for row in self._rows("route_trunks", order_by="route, position"):
            members.setdefault(row["route"], []).append(row["trunk"])
        return [_route(row, members.get(row["name"], [])) for row in
                self._rows("routes", order_by="position")]  # fmt: skip

    def remove_route(self, name: str) -> None:
        with self._transaction() as conn:
            found = conn.execute("SELECT position FROM routes WHERE name = ?", (name,)).fetchone()
            if found is None:
                raise UnknownItem("route", name)
            conn.execute("DELETE FROM routes WHERE name = ?", (name,))
            conn.execute("UPDATE routes SET position = position - 1 WHERE position > ?", found)

    def move_route(self, name: str, position: int) -> list[Route]:
        """Put a route at `position` (1 = tried first, clamped to the list); the new order."""
        names = [r.name for r in self.list_routes()]
        if name not in names:
            raise UnknownItem("route", name)
        names.remove(name)
        names.insert(max(0, min(position - 1, len(names))), name)
        with self._transaction() as conn:
            conn.executemany(
                "UPDATE routes SET position = ? WHERE name = ?",
                [(-(i + 1), n) for i, n in enumerate(names)],
            )
            conn.execute("UPDATE routes SET position = -position")
        return self.list_routes()

    # -- ring groups ------------------------------------------------------------------------

    def add_group(self, group: RingGroup) -> RingGroup:
        if not re.fullmatch(r"[0-9]{2,10}", group.number):
            raise InvalidValue(f"bad ring group number {group.number!r}: 2 to 10 digits")
        if not group.members:
            raise InvalidValue("a ring group needs at least one member")
        if not 5 <= group.ring_timeout <= 300:
            raise InvalidValue("ring timeout must be 5 to 300 seconds")
        group = replace(group, strategy=parse_enum(RingStrategy, group.strategy, "ring strategy"))
        try:
            with self._transaction() as conn:
                for member in group.members:
                    found = conn.execute("SELECT 1 FROM extensions WHERE number = ?", (member,))
                    if not found.fetchone():
                        raise UnknownItem("extension", member)
                conn.execute(
                    "INSERT INTO ring_groups (number, name, strategy, ring_timeout, members) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (group.number, group.name, group.strategy.value, group.ring_timeout,
                     ",".join(group.members)),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise DuplicateItem("ring group", group.number) from None
        return group

    def find_group(self, number: str) -> RingGroup | None:
        rows = self._rows("ring_groups", "number = ?", [number])
        return _group(rows[0]) if rows else None

    def list_groups(self) -> list[RingGroup]:
        return [_group(r) for r in self._rows("ring_groups", order_by="number")]

    def remove_group(self, number: str) -> None:
        """Delete a ring group and the DIDs that ring it (they would lead nowhere)."""
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM ring_groups WHERE number = ?", (number,))
            if cursor.rowcount == 0:
                raise UnknownItem("ring group", number)
            conn.execute("DELETE FROM dids WHERE target_kind = 'group' AND target = ?", (number,))

    # -- DIDs -------------------------------------------------------------------------------

    def add_did(self, did: Did) -> Did:
        if not DID_RE.fullmatch(did.number):
            raise InvalidValue(f"bad DID {did.number!r}: digits with an optional leading +")
        did = replace(did, target_kind=parse_enum(TargetKind, did.target_kind, "DID target"))
        try:
            with self._transaction() as conn:
                for check in _did_checks(did):
                    if not conn.execute(check[0], (check[1],)).fetchone():
                        raise UnknownItem(check[2], check[1])
                conn.execute(
                    "INSERT INTO dids (number, target_kind, target, trunk) VALUES (?, ?, ?, ?)",
                    (did.number, did.target_kind.value, did.target, did.trunk),
                )
        except sqlite3.IntegrityError:
            raise DuplicateItem("DID", did.number) from None
        return did

    def find_did(self, number: str) -> Did | None:
        rows = self._rows("dids", "number = ?", [number])
        return _did(rows[0]) if rows else None

    def list_dids(self) -> list[Did]:
        return [_did(r) for r in self._rows("dids", order_by="number")]

    def remove_did(self, number: str) -> None:
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM dids WHERE number = ?", (number,))
        if cursor.rowcount == 0:
            raise UnknownItem("DID", number)


_TARGET_CHECKS = {
    TargetKind.EXTENSION: ("SELECT 1 FROM extensions WHERE number = ?", "extension"),
    TargetKind.GROUP: ("SELECT 1 FROM ring_groups WHERE number = ?", "ring group"),
}


def _did_checks(did: Did) -> Iterator[tuple[str, str, str]]:
    """(query, value, kind) triples that must each find a row for the DID to be valid."""
    check = _TARGET_CHECKS.get(did.target_kind)
    if check is not None:
        yield check[0], did.target, check[1]
    if did.trunk is not None:
        yield "SELECT 1 FROM trunks WHERE name = ?", did.trunk, "trunk"


def _route(row: dict[str, Any], trunks: list[str]) -> Route:
    return Route(
        name=row["name"],
        patterns=tuple(row["patterns"].split("\n")),
        trunks=tuple(trunks),
        strip=row["strip"],
        prepend=row["prepend"],
        caller_id=row["caller_id"],
        permission=PermissionClass(row["permission"]),
        strategy=Strategy(row["strategy"]),
        position=row["position"],
        record_policy=RecordPolicy(row["record_policy"]),
    )


def _group(row: dict[str, Any]) -> RingGroup:
    return RingGroup(
        number=row["number"],
        members=tuple(row["members"].split(",")),
        name=row["name"],
        strategy=RingStrategy(row["strategy"]),
        ring_timeout=row["ring_timeout"],
    )


def _did(row: dict[str, Any]) -> Did:
    return Did(row["number"], TargetKind(row["target_kind"]), row["target"], row["trunk"])
