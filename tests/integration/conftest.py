"""Fixtures shared by integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.recorded_pbx import WiredPbx, start, stop


@pytest.fixture(params=[True, False], ids=["lane", "full-path"])
async def wired(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[WiredPbx]:
    """A PBX whose UDP answers are recorded (tests/integration/recorded_pbx.py), once with
    the REGISTER lane on and once with it off."""
    pbx = await start(tmp_path / "pbx", lane=request.param)
    try:
        yield pbx
    finally:
        await stop(pbx)
