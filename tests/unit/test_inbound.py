"""Trunk recognition by address and registration, the 403 gate, DID targets and ring waves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.inbound import (
    SOFTPHONE_SETTING,
    Admission,
    InboundGate,
    InboundTarget,
    literal_only,
)
from pbx.routing import Refusal
from pbx.sip.message import Request
from pbx.sip.transport import NextHop
from pbx.store import Store
from pbx.store.trunks import Did, RingGroup, TargetKind, Trunk


def invite(uri: str, from_user: str = "+4930999", to: str | None = None) -> Request:
    return Request(
        "INVITE",
        uri,
        [
            ("Via", "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1"),
            ("From", f"<sip:{from_user}@carrier.example>;tag=a"),
            ("To", f"<{to or uri}>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 INVITE"),
        ],
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.in_dir(tmp_path) as s:
        for number in ("201", "202", "203"):
            s.add_extension(number, "secret123")
        s.add_trunk(Trunk("alpha", "192.0.2.7", register=True, username="acct"))
        s.add_trunk(Trunk("beta", "carrier.example", outbound_proxy="192.0.2.9:5070"))
        s.add_trunk(Trunk("off", "192.0.2.8", enabled=False))
        s.add_group(RingGroup("600", ("201", "202"), "Sales"))
        s.add_group(RingGroup("601", ("203", "201"), "Support", "order", 10))  # type: ignore[arg-type]
        s.add_did(Did("4930555", TargetKind.EXTENSION, "202"))
        s.add_did(Did("+4930556", TargetKind.GROUP, "600"))
        s.add_did(Did("4930557", TargetKind.GROUP, "601", trunk="beta"))
        s.add_did(Did("4930558", TargetKind.SOFTPHONE))
        yield s


def fake_resolver(hop: NextHop) -> set[tuple[str, int]]:
    if hop.host == "carrier.example":
        return {("198.51.100.4", hop.port)}
    return literal_only(hop)


def gate(store: Store, owners: dict[str, str] | None = None) -> InboundGate:
    return InboundGate(store, contact_owner=(owners or {}).get, resolver=fake_resolver)


def test_trunks_are_recognised_by_source_address(store: Store) -> None:
    g = gate(store)
    request = invite("sip:4930555@pbx")
    assert g.admit(request, ("192.0.2.7", 5060)).trunk.name == "alpha"  # type: ignore[union-attr]
    assert g.admit(request, ("192.0.2.7", 40000)).admission is Admission.TRUNK  # any port
    assert g.trunk_for(request, ("198.51.100.4", 5060)).name == "beta"  # type: ignore[union-attr]
    assert g.trunk_for(request, ("192.0.2.9", 5070)).name == "beta"  # type: ignore[union-attr]
    assert g.trunk_for(request, ("192.0.2.8", 5060)) is None  # disabled trunk


def test_trunks_are_recognised_by_registration_contact(store: Store) -> None:
    g = gate(store, {"t-5f2a": "alpha"})
    request = invite("sip:t-5f2a@203.0.113.1:5060", to="sip:4930555@carrier.example")
    admitted = g.admit(request, ("203.0.113.50", 5060))
    assert admitted.admission is Admission.TRUNK and admitted.trunk is not None
    assert admitted.trunk.name == "alpha"
    target = g.route(admitted.trunk, request)  # the DID comes from To
    assert target == InboundTarget("4930555", TargetKind.EXTENSION, (("202",),), 30.0)


def test_unknown_sources_are_refused_unless_an_extension(store: Store) -> None:
    g = gate(store)
    refused = g.admit(invite("sip:0030123@pbx"), ("203.0.113.50", 5060))
    assert refused.admission is Admission.REFUSE
    assert refused.refusal == Refusal(403, "Forbidden")
    local = g.admit(invite("sip:0030123@pbx", from_user="201"), ("127.0.0.1", 5062))
    assert local.admission is Admission.AUTHENTICATE
    store.update_extension("201", enabled=False)
    g.refresh()
    assert g.admit(invite("sip:1@pbx", from_user="201"), ("127.0.0.1", 1)).admission is (
        Admission.REFUSE
    )


def test_did_targets(store: Store) -> None:
    g = gate(store)
    alpha, beta = store.get_trunk("alpha"), store.get_trunk("beta")
    assert g.route(alpha, invite("sip:4930556@pbx")) == InboundTarget(
        "+4930556", TargetKind.GROUP, (("201", "202"),), 20.0
    )
    assert g.route(alpha, invite("sip:+4930555@pbx")).waves == (("202",),)  # type: ignore[union-attr]
    # in-order group, and only from trunk beta
    assert g.route(beta, invite("sip:4930557@pbx")) == InboundTarget(
        "4930557", TargetKind.GROUP, (("203",), ("201",)), 10.0
    )
    assert g.route(alpha, invite("sip:4930557@pbx")) == Refusal(404, "Not Found (no such DID)")
    assert g.route(alpha, invite("sip:999@pbx")) == Refusal(404, "Not Found (no such DID)")
    soft = g.route(alpha, invite("sip:4930558@pbx"))
    assert isinstance(soft, InboundTarget) and soft.softphone and soft.waves == ()
    store.set_setting(SOFTPHONE_SETTING, "203")
    assert g.route(alpha, invite("sip:4930558@pbx")).waves == (("203",),)  # type: ignore[union-attr]


def test_catch_all_did_and_disabled_members(store: Store) -> None:
    g = gate(store)
    alpha = store.get_trunk("alpha")
    store.add_did(Did("s", TargetKind.EXTENSION, "201"))
    assert g.route(alpha, invite("sip:123456@pbx")).waves == (("201",),)  # type: ignore[union-attr]
    store.update_extension("201", enabled=False)
    assert g.route(alpha, invite("sip:4930556@pbx")).waves == (("202",),)  # type: ignore[union-attr]


def test_the_gate_without_dns_knows_addresses_only() -> None:
    assert literal_only(NextHop("127.0.0.1", 5060, "UDP")) == {("127.0.0.1", 5060)}
    assert literal_only(NextHop("[::1]", 5070, "UDP")) == {("::1", 5070)}
    assert literal_only(NextHop("localhost", 5060, "UDP")) == set()


def test_loopback_trunks_need_their_port(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as s:
        s.add_extension("201", "secret123")
        s.add_trunk(Trunk("one", "127.0.0.1", 5071))
        s.add_trunk(Trunk("two", "127.0.0.1", 5072, outbound_proxy="127.0.0.1:5073"))
        g = InboundGate(s)
        request = invite("sip:1@pbx")
        assert g.trunk_for(request, ("127.0.0.1", 5071)).name == "one"  # type: ignore[union-attr]
        assert g.trunk_for(request, ("127.0.0.1", 5072)).name == "two"  # type: ignore[union-attr]
        assert g.trunk_for(request, ("127.0.0.1", 5073)).name == "two"  # type: ignore[union-attr]
        assert g.trunk_for(request, ("127.0.0.1", 40000)) is None  # a phone on this host
        assert g.admit(request, ("127.0.0.1", 40000)).admission is Admission.REFUSE


def test_trunks_added_later_are_recognised_without_a_restart(store: Store) -> None:
    g = gate(store)
    request = invite("sip:4930555@pbx")
    assert g.trunk_for(request, ("203.0.113.9", 5060)) is None
    store.add_trunk(Trunk("late", "203.0.113.9"))
    assert g.trunk_for(request, ("203.0.113.9", 5060)).name == "late"  # type: ignore[union-attr]


def test_a_carriers_published_networks_are_its_trunk(tmp_path: Path) -> None:
    """Asterisk's `identify match=`: a carrier signalling from a range of its own."""
    with Store.in_dir(tmp_path) as s:
        s.add_extension("201", "secret123")
        s.add_trunk(Trunk("ranges", "sip.carrier.invalid", 5070,
                          match_networks="203.0.113.0/24, 2001:db8:5::/48"))  # fmt: skip
        s.add_trunk(Trunk("local", "127.0.0.1", 5071, match_networks="127.0.0.0/8"))
        g = InboundGate(s)
        request = invite("sip:1@pbx")
        assert g.trunk_for(request, ("203.0.113.77", 5060)).name == "ranges"  # type: ignore[union-attr]
        assert g.trunk_for(request, ("2001:db8:5::9", 5062)).name == "ranges"  # type: ignore[union-attr]
        assert g.trunk_for(request, ("203.0.114.1", 5060)) is None
        # on loopback, phones share the address: only the trunk's own port counts
        assert g.trunk_for(request, ("127.0.0.2", 5071)).name == "local"  # type: ignore[union-attr]
        assert g.trunk_for(request, ("127.0.0.2", 40000)) is None


def test_match_networks_are_checked_and_kept_in_one_spelling(tmp_path: Path) -> None:
    from pbx.store import InvalidValue

    with Store.in_dir(tmp_path) as s:
        trunk = s.add_trunk(Trunk("a", "192.0.2.1", match_networks=" 203.0.113.7 ,[2001:db8::/32]"))
        assert trunk.match_networks == "203.0.113.7/32,2001:db8::/32"
        with pytest.raises(InvalidValue, match="bad match network 'carrier.example'"):
            s.add_trunk(Trunk("b", "192.0.2.1", match_networks="carrier.example"))
        with pytest.raises(InvalidValue, match="bad match network '10.0.0.0/33'"):
            s.update_trunk("a", match_networks="10.0.0.0/33")
