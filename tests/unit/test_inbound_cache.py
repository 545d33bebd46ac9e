"""The inbound gate reads the trunk rows only when they may have changed (trunks_version)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.inbound import Admission, InboundGate
from pbx.store import Store
from pbx.store.trunks import Trunk, TrunkStatus
from tests.unit.test_inbound import invite


class CountingStore:
    """A real store whose list_trunks() calls are counted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def list_trunks(self) -> list[Trunk]:
        self.reads += 1
        return self.store.list_trunks()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.in_dir(tmp_path) as s:
        s.add_extension("201", "secret123")
        yield s


def admitted_from(gate: InboundGate, host: str) -> Admission:
    return gate.admit(invite("sip:201@pbx.example", from_user="201"), (host, 5060)).admission


def test_unchanged_trunks_are_read_once(store: Store) -> None:
    counting = CountingStore(store)
    gate = InboundGate(counting)  # type: ignore[arg-type]
    for _ in range(5):
        assert admitted_from(gate, "192.0.2.7") is Admission.AUTHENTICATE
    assert counting.reads == 1


def test_a_trunk_added_on_this_connection_is_recognised_at_once(store: Store) -> None:
    counting = CountingStore(store)
    gate = InboundGate(counting, resolver=lambda hop: {(hop.host, hop.port)})  # type: ignore[arg-type]
    assert admitted_from(gate, "192.0.2.7") is Admission.AUTHENTICATE
    store.add_trunk(Trunk("alpha", "192.0.2.7"))
    assert admitted_from(gate, "192.0.2.7") is Admission.TRUNK
    store.update_trunk("alpha", enabled=False)
    assert admitted_from(gate, "192.0.2.7") is Admission.AUTHENTICATE
    assert counting.reads == 3


def test_a_trunk_added_by_another_process_is_recognised_at_once(
    store: Store, tmp_path: Path
) -> None:
    gate = InboundGate(store, resolver=lambda hop: {(hop.host, hop.port)})
    assert admitted_from(gate, "192.0.2.8") is Admission.AUTHENTICATE
    with Store.in_dir(tmp_path) as other:  # `deskpbx trunk add` from a shell
        other.add_trunk(Trunk("beta", "192.0.2.8"))
    assert admitted_from(gate, "192.0.2.8") is Admission.TRUNK
    with Store.in_dir(tmp_path) as other:
        other.remove_trunk("beta")
    assert admitted_from(gate, "192.0.2.8") is Admission.AUTHENTICATE


def test_trunk_writes_move_the_version(store: Store) -> None:
    versions = [store.trunks_version()]
    store.add_trunk(Trunk("alpha", "192.0.2.7"))
    versions.append(store.trunks_version())
    store.set_trunk_status("alpha", TrunkStatus.UP, 1.0)
    versions.append(store.trunks_version())
    store.remove_trunk("alpha")
    versions.append(store.trunks_version())
    assert len(set(versions)) == 4
    store.add_extension("202", "secret123")  # not a trunk write
    assert store.trunks_version() == versions[-1]


def test_the_version_costs_no_statement_while_nothing_commits(store: Store, tmp_path: Path) -> None:
    first = store.trunks_version()
    assert store.trunks_version() == first  # the first read transaction settles the header
    seen: list[str] = []
    store._conn.set_trace_callback(seen.append)
    assert store.trunks_version() == first
    assert seen == []  # the wal-index header is unchanged: no PRAGMA
    with Store.in_dir(tmp_path) as other:
        other.add_trunk(Trunk("gamma", "192.0.2.9"))
    assert store.trunks_version() != first
    assert seen == ["PRAGMA data_version"]
