"""Typed failures of the store, each with a message a user can act on.

The CLI turns any `StoreError` into one line on stderr (exit status 2); the
HTTP API will map them to 4xx replies. Nothing here leaks SQL or a traceback.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store failure; `str(exc)` is the user-facing message."""


class StoreUnavailable(StoreError):
    """The database file cannot be created, opened or is not a DeskPBX database."""


class InvalidValue(StoreError):
    """A value fails validation (malformed extension number, unknown policy, ...)."""


class WeakPassword(InvalidValue):
    """A SIP password too easy to guess to be accepted for an extension."""


class DuplicateExtension(StoreError):
    """An extension with that number already exists."""

    def __init__(self, number: str) -> None:
        super().__init__(f"extension {number} already exists")
        self.number = number


class UnknownExtension(StoreError):
    """No extension with that number exists."""

    def __init__(self, number: str) -> None:
        super().__init__(f"no extension {number}")
        self.number = number
