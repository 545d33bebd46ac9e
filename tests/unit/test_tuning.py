"""tune_gc(): thresholds raised, start-up objects frozen, and all of it undone;
raise_open_file_limit(): the soft descriptor limit a relay with hundreds of calls needs."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys

import pytest

from pbx.tuning import (
    GC_THRESHOLDS,
    lean_log_records,
    raise_open_file_limit,
    restore_gc,
    tune_gc,
)


def test_tune_gc_freezes_start_up_objects_and_raises_thresholds() -> None:
    before = gc.get_threshold()
    kept = [object() for _ in range(10)]
    settings = tune_gc()
    try:
        assert gc.get_threshold() == GC_THRESHOLDS
        assert settings.previous_thresholds == before
        assert settings.frozen == gc.get_freeze_count() > len(kept)
    finally:
        restore_gc(settings)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_are_still_collected_after_tuning() -> None:
    settings = tune_gc((1000, 10, 10), freeze=False)
    try:
        assert gc.get_freeze_count() == 0
        node: list[object] = []
        node.append(node)
        del node
        assert gc.collect() >= 1
    finally:
        restore_gc(settings)


# ---------------------------------------------------------------- open file limit


def test_open_file_limit_is_raised_to_what_the_relay_needs() -> None:
    """In a child process (the limit is process-wide): soft 1,024 goes up to the wanted
    count, or to the hard limit when that is lower."""
    script = (
        "import resource\n"
        "from pbx.tuning import raise_open_file_limit\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))\n"
        "got = raise_open_file_limit(4096)\n"
        "print(got, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    resource = pytest.importorskip("resource", reason="RLIMIT_NOFILE is POSIX only")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    got, soft, hard = (int(x) for x in out)
    expected = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    assert got == soft == expected


class _FakeResource:
    """A resource module whose setrlimit refuses above `cap`, as macOS does at OPEN_MAX."""

    RLIMIT_NOFILE = 7
    RLIM_INFINITY = -1

    def __init__(self, soft: int, hard: int, cap: int) -> None:
        self.limits = (soft, hard)
        self.cap = cap

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if limits[0] > self.cap:
            raise ValueError("current limit exceeds maximum limit")
        self.limits = limits


def test_an_unlimited_hard_limit_retries_at_open_max(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeResource(256, _FakeResource.RLIM_INFINITY, cap=10_240)
    monkeypatch.setitem(sys.modules, "resource", fake)
    assert raise_open_file_limit(16_384) == 10_240
    assert fake.limits == (10_240, _FakeResource.RLIM_INFINITY)


def test_a_limit_already_high_enough_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeResource(20_000, 20_000, cap=0)  # any setrlimit call would raise
    monkeypatch.setitem(sys.modules, "resource", fake)
    assert raise_open_file_limit(16_384) == 20_000


def test_a_refused_raise_keeps_the_limit_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake = _FakeResource(1024, 4096, cap=1024)
    monkeypatch.setitem(sys.modules, "resource", fake)
    with caplog.at_level(logging.WARNING, logger="pbx.tuning"):
        assert raise_open_file_limit(16_384) == 1024
    assert fake.limits == (1024, 4096)
    assert "open file limit stays at 1024" in caplog.text


def test_no_resource_module_means_no_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "resource", None)  # import raises ImportError (Windows)
    assert raise_open_file_limit() is None


def test_lean_log_records_keep_the_cli_format_and_skip_the_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as logging starts out (another test may have run the CLI's entry point already)
    monkeypatch.setattr(
        logging, "_srcfile", os.path.normcase(logging.addLevelName.__code__.co_filename)
    )
    for name in ("logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, name, True)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("pbx.test.lean")
    logger.addHandler(handler := Keep())
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("before")
        lean_log_records()
        logger.info("call %s -> %s", "1001", "1003")
    finally:
        logger.removeHandler(handler)
    before, after = records
    assert before.funcName == "test_lean_log_records_keep_the_cli_format_and_skip_the_caller"
    assert after.funcName == "(unknown function)" and after.lineno == 0
    assert after.thread is None and after.process is None
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    assert formatter.format(after).endswith(" INFO pbx.test.lean: call 1001 -> 1003")
