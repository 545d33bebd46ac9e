"""Frozen slotted dataclasses built at the cost of plain ones, for values made per request.

Why: the registrar, the digest check and the store build frozen values (a binding, parsed
credentials, a verdict) for every REGISTER, and a frozen dataclass's __init__ pays
object.__setattr__ for each field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import field
from typing import Any, TypeVar

R = TypeVar("R")


def quick_constructor(cls: type[R]) -> Callable[..., R]:
    """`cls(...)` for a frozen slotted dataclass at the cost of a plain slotted one.

    A frozen dataclass's __init__ sets each field through object.__setattr__: about 1,900
    instructions a field, 24,600 for one Binding, on every REGISTER. The constructor made
    here fills a plain slotted twin of `cls` (same fields, same defaults, same slot layout)
    and then makes it a `cls` by __class__ assignment, which CPython allows between classes
    of one layout. What it returns is a real `cls`, frozen and equal to `cls(...)`.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ the twin would skip")
    twin = dataclasses.make_dataclass(
        f"_{cls.__name__}Draft",
        [(f.name, f.type, field(default=f.default, default_factory=f.default_factory))
         for f in fields],
        slots=True,
    )  # fmt: skip
    if getattr(twin, "__slots__", ()) != getattr(cls, "__slots__", None):
        raise TypeError(f"{cls.__name__} does not keep its fields in slots")

    def build(*args: Any, **kwargs: Any) -> R:
        draft = twin(*args, **kwargs)
        draft.__class__ = cls
        return draft  # type: ignore[no-any-return]

    return build
