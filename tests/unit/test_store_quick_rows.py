"""Rows built by quick_constructor are the same frozen rows the dataclass builds."""

from __future__ import annotations

import dataclasses

import pytest

from pbx.frozen import quick_constructor
from pbx.store.rows import Binding, new_binding

ARGS = dict(extension="1000", contact="sip:1000@10.0.0.5:5060", source_host="192.0.2.7",
            source_port=40123, transport="UDP", expires_at=1_700_003_600.0, q=0.5,
            call_id="c1@phone", cseq=7, user_agent="SIPp", instance_id="<urn:uuid:1>")  # fmt: skip


def test_a_quick_binding_equals_the_dataclass_one() -> None:
    quick, slow = new_binding(**ARGS), Binding(**ARGS)
    assert type(quick) is Binding
    assert quick == slow and hash(quick) == hash(slow) and repr(quick) == repr(slow)
    assert quick.reachable is True and quick.last_qualified is None  # defaults kept
    assert dataclasses.replace(quick, cseq=8).cseq == 8


def test_positional_arguments_fill_the_same_fields() -> None:
    values = tuple(ARGS.values())
    assert new_binding(*values) == Binding(*values)


def test_a_quick_binding_is_still_frozen() -> None:
    quick = new_binding(**ARGS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.cseq = 9  # type: ignore[misc]


def test_missing_fields_are_refused_as_by_the_dataclass() -> None:
    with pytest.raises(TypeError):
        new_binding(extension="1000")


def test_classes_it_cannot_copy_are_refused() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError):
        quick_constructor(NoSlots)
    with pytest.raises(TypeError):
        quick_constructor(Checked)
