"""Registrar bindings in the store (RFC 3261 §10.3 location service)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pbx.store import Binding, Store, UnknownExtension

PASSWORD = "correct-horse-battery"
T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.in_dir(tmp_path) as opened:
        opened.add_extension("201", PASSWORD)
        opened.add_extension("202", PASSWORD)
        yield opened


def _binding(ext: str = "201", contact: str = "sip:201@192.168.1.20:5060", **kw) -> Binding:
    values = dict(
        extension=ext,
        contact=contact,
        source_host="203.0.113.7",
        source_port=41234,
        transport="udp",
        expires_at=T0 + 3600,
        q=1.0,
        call_id="c1@phone",
        cseq=1,
        user_agent="Yealink SIP-T46S 66.86.0.15",
        instance_id="<urn:uuid:00000000-0000-1000-8000-000000000001>",
    )
    values.update(kw)
    return Binding(**values)


def test_upsert_then_get_round_trips_every_field(store: Store) -> None:
    binding = _binding(reachable=False, last_qualified=T0 - 5.5, q=0.7)
    store.upsert_binding(binding)
    assert store.get_binding("201", "sip:201@192.168.1.20:5060") == binding


def test_upsert_refreshes_existing_contact(store: Store) -> None:
    store.upsert_binding(_binding())
    refreshed = _binding(expires_at=T0 + 7200, cseq=2, source_port=41999)
    store.upsert_binding(refreshed)
    assert store.active_bindings(T0) == [refreshed]


def test_binding_for_unknown_extension_is_rejected(store: Store) -> None:
    with pytest.raises(UnknownExtension, match="no extension 999"):
        store.upsert_binding(_binding(ext="999"))
    assert store.active_bindings(T0) == []


def test_active_bindings_exclude_expired_and_sort_by_q(store: Store) -> None:
    low = _binding(contact="sip:201@10.0.0.1", q=0.5)
    high = _binding(contact="sip:201@10.0.0.2", q=1.0)
    gone = _binding(contact="sip:201@10.0.0.3", expires_at=T0 - 1)
    other = _binding(ext="202", contact="sip:202@10.0.0.9")
    for b in (low, gone, other, high):
        store.upsert_binding(b)
    assert store.active_bindings(T0, "201") == [high, low]
    assert store.active_bindings(T0) == [high, low, other]


def test_binding_expiring_exactly_now_is_not_active(store: Store) -> None:
    store.upsert_binding(_binding(expires_at=T0))
    assert store.active_bindings(T0 - 0.001) != []
    assert store.active_bindings(T0) == []


def test_active_binding_counts(store: Store) -> None:
    store.upsert_binding(_binding(contact="sip:a@h"))
    store.upsert_binding(_binding(contact="sip:b@h"))
    store.upsert_binding(_binding(contact="sip:c@h", expires_at=T0 - 10))
    store.upsert_binding(_binding(ext="202", contact="sip:d@h"))
    assert store.active_binding_counts(T0) == {"201": 2, "202": 1}
    assert store.active_binding_counts(T0 + 3600) == {}


def test_remove_one_binding(store: Store) -> None:
    store.upsert_binding(_binding(contact="sip:a@h"))
    store.upsert_binding(_binding(contact="sip:b@h"))
    assert store.remove_binding("201", "sip:a@h") is True
    assert store.remove_binding("201", "sip:a@h") is False
    assert [b.contact for b in store.active_bindings(T0)] == ["sip:b@h"]


def test_remove_all_bindings_of_one_extension(store: Store) -> None:
    store.upsert_binding(_binding(contact="sip:a@h"))
    store.upsert_binding(_binding(contact="sip:b@h"))
    store.upsert_binding(_binding(ext="202", contact="sip:c@h"))
    assert store.remove_bindings("201") == 2
    assert [b.extension for b in store.active_bindings(T0)] == ["202"]


def test_purge_expired(store: Store) -> None:
    store.upsert_binding(_binding(contact="sip:old@h", expires_at=T0 - 1))
    store.upsert_binding(_binding(contact="sip:edge@h", expires_at=T0))
    store.upsert_binding(_binding(contact="sip:new@h", expires_at=T0 + 1))
    assert store.purge_expired_bindings(T0) == 2
    assert store.get_binding("201", "sip:old@h") is None
    assert store.get_binding("201", "sip:new@h") is not None
    assert store.purge_expired_bindings(T0) == 0


def test_expired_binding_still_readable_until_purged(store: Store) -> None:
    """§10.3 step 6 needs the last Call-ID/CSeq even after expiry, until purge."""
    store.upsert_binding(_binding(expires_at=T0 - 100, cseq=9))
    stored = store.get_binding("201", "sip:201@192.168.1.20:5060")
    assert stored is not None and stored.cseq == 9


def test_mark_qualified(store: Store) -> None:
    store.upsert_binding(_binding())
    assert store.mark_qualified("201", "sip:201@192.168.1.20:5060", False, T0 + 30) is True
    stored = store.get_binding("201", "sip:201@192.168.1.20:5060")
    assert stored == replace(_binding(), reachable=False, last_qualified=T0 + 30)
    assert store.mark_qualified("201", "sip:nobody@h", True, T0) is False


def test_removing_extension_removes_its_bindings(store: Store) -> None:
    store.upsert_binding(_binding())
    store.upsert_binding(_binding(ext="202", contact="sip:202@h"))
    store.remove_extension("201")
    assert [b.extension for b in store.active_bindings(T0)] == ["202"]


def test_bindings_persist_across_restarts(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as first:
        first.add_extension("201", PASSWORD)
        first.upsert_binding(_binding())
    with Store.in_dir(tmp_path) as second:
        assert second.active_bindings(T0) == [_binding()]
