"""`deskpbx serve` raises its open-file limit before it binds anything.

Started, as desktops start processes, with a soft limit of 1,024 descriptors (a
relayed call uses four to six sockets), the running PBX must show the raised soft
limit in /proc/PID/limits (Linux; skipped elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.serve_process import running_serve

resource = pytest.importorskip("resource", reason="RLIMIT_NOFILE is POSIX only")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="needs Linux /proc"),
]


def _soft_open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no 'Max open files' line")


def _low_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))


def test_serve_raises_the_soft_open_file_limit(tmp_path: Path) -> None:
    from pbx.tuning import OPEN_FILES_WANTED

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(OPEN_FILES_WANTED, hard)
    if expected <= 1024:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    with running_serve(tmp_path, preexec_fn=_low_limit, listen_timeout=20) as serve:
        assert _soft_open_files(serve.proc.pid) == expected
