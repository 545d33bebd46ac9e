"""Shared test helpers.

`rfc4475_dir` locates the RFC 4475 torture messages, which live outside the
repository in `<repo parent>/shared/conformance/rfc4475` and are never copied
into it; tests that need them skip with a clear reason when the folder is absent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

RFC4475_DIR = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "rfc4475"


def rfc4475_path() -> Path | None:
    """The folder of the RFC 4475 .dat files, or None when it is not there."""
    return RFC4475_DIR if RFC4475_DIR.is_dir() else None


def rfc4475_message(name: str) -> bytes:
    """The bytes of one torture message (`wsinv` or `wsinv.dat`); skips when absent."""
    folder = rfc4475_path()
    if folder is None:
        pytest.skip(f"RFC 4475 torture messages not found at {RFC4475_DIR}")
    stem = name.removesuffix(".dat")
    return (folder / f"{stem}.dat").read_bytes()


@pytest.fixture
def rfc4475_dir() -> Path:
    """Path of the RFC 4475 folder; skips the test when the folder is absent."""
    folder = rfc4475_path()
    if folder is None:
        pytest.skip(f"RFC 4475 torture messages not found at {RFC4475_DIR}")
    return folder


@pytest.fixture
def local_time_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time pinned to UTC, for tables that print local time and tests that expect
    exact text; skips where time.tzset is missing (it is POSIX only)."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only; the table prints local time")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()
