"""The B2BUA's helper for INVITEs arriving from outside: who sent it, and where it rings.

Theory of operation. Before the B2BUA authenticates an INVITE it asks
`InboundGate.admit(request, source)`:

    FromTrunk(trunk)  the source address is a trunk's host or outbound proxy (any
                      server their DNS SRV records name, too), or lies in one of the
                      trunk's match networks (on a loopback address, where phones and
                      trunks share 127.0.0.1, its port must be the trunk's port too), or
                      the Request-URI user is the secret Contact user a trunk
                      registered with (TrunkManager.trunk_for_contact_user):
                      no digest challenge, route by DID with `route(trunk, request)`
    Authenticate      the From user is a local extension: challenge as usual (407)
    Refuse(403)       anyone else: answer 403 statelessly-in-spirit, no dialog,
                      no call, nothing ever sent to a carrier (RFC 3261 §8.2.2, the
                      SBC rule "refuse what does not come from our own servers")

`route(trunk, request)` looks the DID up (Request-URI user, or the To user
when the Request-URI is our registration contact; with and without a leading
'+') and returns an `InboundTarget`: the waves of extensions to ring (one wave
with everybody for a ring-all group or a plain extension, one wave per member
for an in-order group) and the seconds each wave rings, or a Refusal 404.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pbx.outbound import OutboundDialer
from pbx.routing import Refusal
from pbx.sip.message import Request
from pbx.sip.transport import NextHop
from pbx.sip.uri import SipUri
from pbx.store.rows import Extension
from pbx.store.trunks import Did, RingGroup, RingStrategy, TargetKind, Trunk, parse_networks

SOFTPHONE_SETTING = "softphone_extension"
"""Settings key naming the extension the desktop softphone registers as."""

NO_DID = Refusal(404, "Not Found (no such DID)")
FORBIDDEN = Refusal(403, "Forbidden")


class InboundStore(Protocol):
    def list_trunks(self) -> list[Trunk]: ...
    def find_did(self, number: str) -> Did | None: ...
    def find_group(self, number: str) -> RingGroup | None: ...
    def find_extension(self, number: str) -> Extension | None: ...
    def get_setting(self, key: str, default: str | None = None) -> str | None: ...


class Admission(enum.Enum):
    TRUNK = "trunk"
    AUTHENTICATE = "authenticate"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class Admitted:
    """The gate's verdict; `trunk` is set for Admission.TRUNK, `refusal` for REFUSE."""

    admission: Admission
    trunk: Trunk | None = None
    refusal: Refusal | None = None


AUTHENTICATE = Admitted(Admission.AUTHENTICATE)
REFUSED = Admitted(Admission.REFUSE, refusal=FORBIDDEN)
"""The gate's two verdicts without a trunk, shared (immutable) instead of built per INVITE."""


@dataclass(frozen=True, slots=True)
class InboundTarget:
    """Where a DID rings: `waves` of extension numbers, each rung for `ring_timeout` s."""

    did: str
    kind: TargetKind
    waves: tuple[tuple[str, ...], ...]
    ring_timeout: float
    softphone: bool = False


Resolver = Callable[[NextHop], set[tuple[str, int]]]
"""A trunk's hop -> the (address, port) of each of its servers, now."""


def literal_only(hop: NextHop) -> set[tuple[str, int]]:
    """A resolver for a gate without DNS: an IP literal is its own address, a name none."""
    try:
        return {(str(ipaddress.ip_address(hop.host.strip("[]"))), hop.port)}
    except ValueError:
        return set()


class InboundGate:
    """Recognises trunks and routes their calls by DID (see the module docstring).

    `contact_owner(user) -> trunk name | None` is TrunkManager.trunk_for_contact_user;
    `resolver(hop)` gives the servers a trunk's host (or outbound proxy) names now,
    without blocking: pbx.net.dns.Locator.addresses, which looks names up in the
    background, SRV targets included, and moves `generation()` when an answer changes.
    The trunk rows are re-read on an INVITE whenever the store's `trunks_version()` or
    the resolver's generation moved (a store without a version: on every INVITE), so
    `deskpbx trunk add` from another process, or a carrier's new address, takes effect
    at once.
    """

    def __init__(
        self,
        store: InboundStore,
        *,
        contact_owner: Callable[[str], str | None] = lambda user: None,
        resolver: Resolver = literal_only,
        generation: Callable[[], int] = lambda: 0,
        default_ring_timeout: float = 30.0,
    ) -> None:
        self.store = store
        self.contact_owner = contact_owner
        self.resolver = resolver
        self.generation = generation
        self.default_ring_timeout = default_ring_timeout
        self._by_address: dict[str, list[tuple[int, Trunk]]] = {}
        self._networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Trunk]] = []
        self._by_name: dict[str, Trunk] = {}
        self._seen: list[Trunk] | None = None
        self._version: object = None
        self._generation = -1

    def refresh(self) -> None:
        """Re-read the trunks (and ask the resolver again) on the next INVITE."""
        self._seen = None

    def _load(self) -> None:
        versioned = getattr(self.store, "trunks_version", None)
        version = versioned() if versioned is not None else None
        generation = self.generation()
        if (
            version is not None and version == self._version and self._seen is not None
            and generation == self._generation
        ):  # fmt: skip
            return  # no trunk row and no DNS answer can have changed since the last read
        self._version = version
        trunks = [t for t in self.store.list_trunks() if t.enabled]
        if trunks == self._seen and generation == self._generation:
            return
        self._seen = trunks
        self._generation = generation
        by_address: dict[str, list[tuple[int, Trunk]]] = {}
        for trunk in trunks:
            for hop in OutboundDialer.hops(trunk):
                for address, port in self.resolver(hop):
                    by_address.setdefault(address, []).append((port, trunk))
        self._by_address = by_address
        self._networks = [(network, trunk) for trunk in trunks
                          for network in parse_networks(trunk.match_networks)]  # fmt: skip
        self._by_name = {t.name: t for t in trunks}

    def trunk_for(self, request: Request, source: tuple[str, int]) -> Trunk | None:
        """The trunk this request came from, by source address or registration contact."""
        self._load()
        if not self._by_name:  # no enabled trunk: nothing to recognise (the common PBX)
            return None
        try:
            ip = ipaddress.ip_address(source[0].strip("[]"))
        except ValueError:
            ip = None
        address = str(ip) if ip is not None else source[0]
        candidates = self._by_address.get(address, [])
        exact = [t for port, t in candidates if port == source[1]]
        if exact:
            return exact[0]
        if candidates and not (ip is not None and ip.is_loopback):
            return candidates[0][1]
        if ip is not None:  # the carrier's published networks (on loopback: its port too)
            for network, trunk in self._networks:
                if ip in network and (not ip.is_loopback or source[1] == trunk.port):
                    return trunk
        user = _uri_user(request)
        owner = self.contact_owner(user) if user else None
        return self._by_name.get(owner) if owner else None

    def admit(self, request: Request, source: tuple[str, int]) -> Admitted:
        trunk = self.trunk_for(request, source)
        if trunk is not None:
            return Admitted(Admission.TRUNK, trunk=trunk)
        from_user = getattr(request.from_.uri, "user", None)
        extension = self.store.find_extension(from_user) if from_user else None
        if extension is not None and extension.enabled:
            return AUTHENTICATE
        return REFUSED

    def route(self, trunk: Trunk, request: Request) -> InboundTarget | Refusal:
        """Where the DID of this trunk call rings; 404 for an unknown DID."""
        user = _uri_user(request) or ""
        if user and self.contact_owner(user) == trunk.name:
            user = getattr(request.to.uri, "user", None) or ""
        did = self._find_did(user)
        if did is None or (did.trunk is not None and did.trunk != trunk.name):
            return NO_DID
        return _TARGETS[did.target_kind](self, did)

    def _find_did(self, user: str) -> Did | None:
        for candidate in dict.fromkeys((user, user.removeprefix("+"), "+" + user, "s")):
            if candidate:
                did = self.store.find_did(candidate)
                if did is not None:
                    return did
        return None

    def _to_extension(self, did: Did) -> InboundTarget | Refusal:
        extension = self.store.find_extension(did.target)
        if extension is None or not extension.enabled:
            return NO_DID
        return InboundTarget(did.number, did.target_kind, ((did.target,),),
                             self.default_ring_timeout)  # fmt: skip

    def _to_group(self, did: Did) -> InboundTarget | Refusal:
        group = self.store.find_group(did.target)
        if group is None:
            return NO_DID
        members = tuple(
            m for m in group.members if (e := self.store.find_extension(m)) and e.enabled
        )
        if not members:
            return NO_DID
        waves = (members,) if group.strategy is RingStrategy.ALL else tuple((m,) for m in members)
        return InboundTarget(did.number, did.target_kind, waves, float(group.ring_timeout))

    def _to_softphone(self, did: Did) -> InboundTarget | Refusal:
        number = self.store.get_setting(SOFTPHONE_SETTING)
        waves = ((number,),) if number else ()
        return InboundTarget(did.number, did.target_kind, waves, self.default_ring_timeout,
                             softphone=True)  # fmt: skip


_TARGETS: dict[TargetKind, Callable[[InboundGate, Did], InboundTarget | Refusal]] = {
    TargetKind.EXTENSION: InboundGate._to_extension,
    TargetKind.GROUP: InboundGate._to_group,
    TargetKind.SOFTPHONE: InboundGate._to_softphone,
}


def _uri_user(request: Request) -> str | None:
    uri = request.uri
    return uri.user if isinstance(uri, SipUri) else None
