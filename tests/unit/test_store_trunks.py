"""Trunks, routes, ring groups and DIDs in the store: round trips, order, validation."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pbx.store import InvalidValue, PermissionClass, RecordPolicy, Store
from pbx.store.trunks import (
    Did,
    DuplicateItem,
    RingGroup,
    RingStrategy,
    Route,
    Strategy,
    TargetKind,
    Trunk,
    TrunkStatus,
    UnknownItem,
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.in_dir(tmp_path)
    s.add_extension("201", "secret123")
    s.add_extension("202", "secret123")
    return s


def carrier(name: str = "alpha", **kw: object) -> Trunk:
    values: dict[str, object] = {"host": "127.0.0.1", "port": 5070, **kw}
    return Trunk(name=name, **values)  # type: ignore[arg-type]


def test_trunk_round_trip_keeps_password_out_of_repr(store: Store) -> None:
    added = store.add_trunk(
        carrier(username="acct", password="s3cr3t!", register=True, transport="tcp",
                caller_id="+4930123", prefix="0049", max_calls=2, send_pai=True)
    )  # fmt: skip
    assert added.transport == "TCP"
    got = store.get_trunk("alpha")
    assert got == added
    assert got.password == "s3cr3t!" and got.password_set
    assert "s3cr3t!" not in repr(got)
    assert got.uri_domain == "127.0.0.1"
    assert store.list_trunks() == [got]


def test_database_file_is_private(store: Store) -> None:
    store.add_trunk(carrier(password="pw"))
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "bad name"}, "bad trunk name"),
        ({"host": "a b"}, "bad trunk host"),
        ({"port": 0}, "bad trunk port"),
        ({"transport": "SCTP"}, "bad transport"),
        ({"max_calls": -1}, "max calls"),
        ({"register": True}, "needs a username"),
        ({"prefix": "9x"}, "bad number prefix"),
    ],
)
def test_trunk_validation(store: Store, changes: dict[str, object], message: str) -> None:
    trunk = carrier(**{k: v for k, v in changes.items() if k != "name"})
    if "name" in changes:
        trunk = Trunk(name=str(changes["name"]), host="h")
    with pytest.raises(InvalidValue, match=message):
        store.add_trunk(trunk)


def test_duplicate_and_unknown_trunk(store: Store) -> None:
    store.add_trunk(carrier())
    with pytest.raises(DuplicateItem, match="trunk alpha already exists"):
        store.add_trunk(carrier())
    with pytest.raises(UnknownItem, match="no trunk beta"):
        store.remove_trunk("beta")


def test_update_and_status(store: Store) -> None:
    store.add_trunk(carrier())
    assert store.update_trunk("alpha", max_calls=3, enabled=False).max_calls == 3
    assert store.get_trunk("alpha").enabled is False
    assert store.set_trunk_status("alpha", TrunkStatus.DOWN, 1000.0)
    got = store.get_trunk("alpha")
    assert (got.status, got.status_at) == (TrunkStatus.DOWN, 1000.0)
    assert not store.set_trunk_status("nope", TrunkStatus.UP, 1.0)
    with pytest.raises(InvalidValue, match="cannot change bogus"):
        store.update_trunk("alpha", bogus=1)


def test_routes_keep_order_and_move(store: Store) -> None:
    store.add_trunk(carrier("alpha"))
    store.add_trunk(carrier("beta"))
    store.add_route(Route("local", ("9|NXXXXXX",), ("alpha", "beta"), permission="local"))  # type: ignore[arg-type]
    store.add_route(Route("intl", ("9|011.",), ("beta",), strategy="round-robin"))  # type: ignore[arg-type]
    store.add_route(Route("any", (r"re:^\d+$",), ("alpha",)))
    routes = store.list_routes()
    assert [(r.name, r.position) for r in routes] == [("local", 1), ("intl", 2), ("any", 3)]
    assert routes[0].trunks == ("alpha", "beta")
    assert routes[0].permission is PermissionClass.LOCAL
    assert routes[1].strategy is Strategy.ROUND_ROBIN
    moved = store.move_route("any", 1)
    assert [(r.name, r.position) for r in moved] == [("any", 1), ("local", 2), ("intl", 3)]
    store.remove_route("local")
    assert [(r.name, r.position) for r in store.list_routes()] == [("any", 1), ("intl", 2)]
    store.remove_trunk("beta")  # leaves every route it was in
    assert store.list_routes()[1].trunks == ()


def test_route_recording_policy(store: Store) -> None:
    store.add_trunk(carrier("alpha"))
    store.add_route(Route("plain", ("X.",), ("alpha",)))
    store.add_route(Route("rec", ("9|X.",), ("alpha",), record_policy="always"))  # type: ignore[arg-type]
    policies = {r.name: r.record_policy for r in store.list_routes()}
    assert policies == {"plain": RecordPolicy.NEVER, "rec": RecordPolicy.ALWAYS}
    with pytest.raises(InvalidValue, match="record policy"):
        store.add_route(Route("bad", ("X.",), (), record_policy="sometimes"))  # type: ignore[arg-type]


def test_route_errors(store: Store) -> None:
    with pytest.raises(UnknownItem, match="no trunk ghost"):
        store.add_route(Route("r", ("X.",), ("ghost",)))
    with pytest.raises(InvalidValue, match="strategy must be one of"):
        store.add_route(Route("r", ("X.",), (), strategy="random"))  # type: ignore[arg-type]
    with pytest.raises(UnknownItem, match="no route r"):
        store.move_route("r", 1)
    assert store.list_routes() == []


def test_groups_and_dids(store: Store) -> None:
    store.add_trunk(carrier())
    group = store.add_group(RingGroup("600", ("201", "202"), "Sales", "order", 15))  # type: ignore[arg-type]
    assert store.find_group("600") == group
    assert group.strategy is RingStrategy.ORDER
    with pytest.raises(UnknownItem, match="no extension 299"):
        store.add_group(RingGroup("601", ("299",)))
    store.add_did(Did("+4930555", TargetKind.GROUP, "600", "alpha"))
    store.add_did(Did("4930556", "extension", "201"))  # type: ignore[arg-type]
    store.add_did(Did("4930557", TargetKind.SOFTPHONE))
    assert store.find_did("+4930555") == Did("+4930555", TargetKind.GROUP, "600", "alpha")
    assert [d.number for d in store.list_dids()] == ["+4930555", "4930556", "4930557"]
    with pytest.raises(UnknownItem, match="no ring group 700"):
        store.add_did(Did("1", TargetKind.GROUP, "700"))
    with pytest.raises(DuplicateItem, match="DID 4930556 already exists"):
        store.add_did(Did("4930556", TargetKind.SOFTPHONE))
    store.remove_trunk("alpha")
    assert store.find_did("+4930555") is None
    store.remove_group("600")
    with pytest.raises(UnknownItem, match="no ring group 600"):
        store.remove_group("600")
