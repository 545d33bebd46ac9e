"""What a query mixin of `Store` may use: the store's transaction and row helpers.

The mixins (trunks, recordings, API tokens) live in their own modules so the
features stay apart, yet `Store` remains the only object that runs SQL; this
base tells the type checker which of Store's helpers they call.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any


class StoreMixin:
    """Base of Store's query mixins; Store itself provides the methods below."""

    if TYPE_CHECKING:

        def _transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

        def _rows(
            self,
            table: str,
            where: str | None = None,
            args: Any = None,
            *,
            order_by: str | None = None,
            limit: int | None = None,
        ) -> list[dict[str, Any]]: ...
