"""Where passwords live: the OS keyring, or the PBX's own store when there is none.

On a headless Linux box keyring's chosen backend raises NoKeyringError (or
another KeyringError); then the secret goes to the embedded PBX's settings
table instead, and `where` says so, so that the dialog can tell the user
in plain words. Tests install an in-memory keyring backend; a plaintext
file backend (keyrings.alt) is never used.
"""

from __future__ import annotations

import logging
import secrets
import string
from typing import Protocol

import keyring
from keyring.errors import KeyringError, PasswordDeleteError

log = logging.getLogger(__name__)

SERVICE = "deskphone"
KEYRING = "the system keyring"
PBX_STORE = "the PBX's database (no system keyring is available)"
_PREFIX = "deskphone.secret."
ACCOUNT_SECRET = "account-password"
"""The softphone's password on an external PBX or provider."""
PASSWORD_ALPHABET = string.ascii_letters + string.digits


def strong_password(length: int = 16) -> str:
    """16 random letters and digits (~95 bits): easy to type on a phone's keypad menu."""
    while True:
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if any(c.isdigit() for c in password) and any(c.isalpha() for c in password):
            return password


class Settings(Protocol):
    """The part of pbx.store.Store used as the fallback."""

    def get_setting(self, key: str, default: str | None = None) -> str | None: ...

    def set_setting(self, key: str, value: str) -> None: ...


class SecretStore:
    """get/set/delete a named secret; `where` says where the last one went."""

    def __init__(self, fallback: Settings | None) -> None:
        self.fallback = fallback
        self.where = KEYRING

    def get(self, name: str) -> str | None:
        try:
            value = keyring.get_password(SERVICE, name)
        except KeyringError as exc:
            log.info("keyring unavailable (%s): reading %s from the PBX store", exc, name)
            self.where = PBX_STORE
            value = None
        if value is None and self.fallback is not None:
            value = self.fallback.get_setting(_PREFIX + name) or None
        return value

    def set(self, name: str, value: str) -> str:
        """Store `value`; returns (and remembers in `where`) where it went."""
        try:
            keyring.set_password(SERVICE, name, value)
        except KeyringError as exc:
            if self.fallback is None:
                raise
            log.info("keyring unavailable (%s): keeping %s in the PBX store", exc, name)
            self.fallback.set_setting(_PREFIX + name, value)
            self.where = PBX_STORE
            return self.where
        if self.fallback is not None and self.fallback.get_setting(_PREFIX + name):
            self.fallback.set_setting(_PREFIX + name, "")  # moved to the keyring
        self.where = KEYRING
        return self.where

    def delete(self, name: str) -> None:
        try:
            keyring.delete_password(SERVICE, name)
        except (PasswordDeleteError, KeyringError):
            pass
        if self.fallback is not None and self.fallback.get_setting(_PREFIX + name):
            self.fallback.set_setting(_PREFIX + name, "")
