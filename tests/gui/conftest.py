"""pytest-qt runs offscreen; keyring is an in-memory backend; the phone can be a fake."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import keyring  # noqa: E402
import pytest  # noqa: E402
from keyring.backend import KeyringBackend  # noqa: E402
from keyring.errors import NoKeyringError, PasswordDeleteError  # noqa: E402

pytest.importorskip("PySide6", reason="the GUI tests need PySide6 (pyside6-essentials)")
pytest.importorskip("pytestqt", reason="the GUI tests need pytest-qt")

from app.bridge import LoopThread  # noqa: E402
from tests.gui.fakes import FakePhone  # noqa: E402


class MemoryKeyring(KeyringBackend):
    """A keyring that forgets everything at exit: never a plaintext file."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.secrets.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


class NoKeyring(KeyringBackend):
    """What a headless Linux box has: every call raises NoKeyringError."""

    priority = 0  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        raise NoKeyringError("No recommended backend was available.")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise NoKeyringError("No recommended backend was available.")

    def delete_password(self, service: str, username: str) -> None:
        raise NoKeyringError("No recommended backend was available.")


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    runner = LoopThread("test-loop")
    yield runner.loop
    runner.stop()


@pytest.fixture
def fake_phone() -> FakePhone:
    return FakePhone()
