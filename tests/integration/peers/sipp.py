"""Run SIPp (Debian package sip-tester) scenarios against the PBX on 127.0.0.1.

Scenarios live in tests/integration/sipp/. Credentials come from a CSV
injection file whose second column holds a whole `[authentication ...]`
keyword, because SIPp does not expand fields inside that keyword. Results
are read from SIPp's statistics file, not its screen.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).resolve().parent.parent / "sipp"


@dataclass(frozen=True)
class SippResult:
    returncode: int
    successful: int
    failed: int
    retransmissions: int
    elapsed: float
    log: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0 and self.successful > 0


def auth_field(user: str, password: str) -> str:
    return f"[authentication username={user} password={password}]"


def write_csv(rows: list[list[str]], directory: Path, order: str = "SEQUENTIAL") -> Path:
    path = directory / f"inject-{time.monotonic_ns()}.csv"
    path.write_text(order + "\n" + "\n".join(";".join(row) for row in rows) + "\n")
    return path


def scenario(name: str, directory: Path, **substitutions: str) -> Path:
    """A scenario file, with placeholders such as EXPECTED_CODE filled in."""
    text = (SCENARIOS / name).read_text()
    if not substitutions:
        return SCENARIOS / name
    for key, value in substitutions.items():
        text = text.replace(key, value)
    path = directory / f"{Path(name).stem}-{time.monotonic_ns()}.xml"
    path.write_text(text)
    return path


class Sipp:
    """One SIPp process. `start()` runs it in the background, `wait()` collects the result."""

    def __init__(
        self,
        scenario_path: Path,
        remote: str | None,
        *,
        local_port: int,
        media_port: int | None = None,
        inject: Path | None = None,
        calls: int | None = 1,
        rate: float | None = None,
        limit: int | None = None,
        timeout: float = 30.0,
        pause_ms: int = 1000,
        extra: tuple[str, ...] = (),
        workdir: Path | None = None,
    ) -> None:
        if SIPP is None:
            raise RuntimeError("sipp is not installed (Debian package sip-tester)")
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="sipp-"))
        self.stats = self.workdir / f"stat-{time.monotonic_ns()}.csv"
        self.timeout = timeout
        args = [SIPP, "-sf", str(scenario_path), "-i", "127.0.0.1", "-p", str(local_port)]
        if media_port is not None:
            args += ["-mp", str(media_port), "-mi", "127.0.0.1"]
        if inject is not None:
            args += ["-inf", str(inject)]
        if calls is not None:
            args += ["-m", str(calls)]
        if rate is not None:
            args += ["-r", str(rate)]
        if limit is not None:
            args += ["-l", str(limit)]
        args += [
            "-d",
            str(pause_ms),
            "-timeout",
            f"{int(timeout)}s",
            "-timeout_error",
            "-trace_stat",
            "-stf",
            str(self.stats),
            "-fd",
            "1",
            "-nostdin",
            *extra,
        ]
        if remote is not None:
            args.append(remote)
        self.args = args
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    def start(self) -> Sipp:
        self._started = time.monotonic()
        self._proc = subprocess.Popen(
            self.args,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait(self) -> SippResult:
        assert self._proc is not None, "start() first"
        try:
            output, _ = self._proc.communicate(timeout=self.timeout + 10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            output, _ = self._proc.communicate()
        return self._result(output)

    def stop(self) -> SippResult:
        """End a server-mode SIPp (it runs until told to stop)."""
        assert self._proc is not None, "start() first"
        if self._proc.poll() is None:
            self._proc.terminate()
        try:
            output, _ = self._proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            output, _ = self._proc.communicate()
        return self._result(output)

    def _result(self, output: bytes) -> SippResult:
        assert self._proc is not None
        successful = failed = retrans = 0
        if self.stats.exists():
            rows = list(csv.DictReader(self.stats.open(), delimiter=";"))
            if rows:
                last = rows[-1]
                successful = int(last.get("SuccessfulCall(C)", 0) or 0)
                failed = int(last.get("FailedCall(C)", 0) or 0)
                retrans = int(last.get("Retransmissions(C)", 0) or 0)
        logs = [output.decode(errors="replace")]
        for err in self.workdir.glob("*_errors.log"):
            logs.append(err.read_text(errors="replace")[-3000:])
        return SippResult(
            returncode=self._proc.returncode,
            successful=successful,
            failed=failed,
            retransmissions=retrans,
            elapsed=time.monotonic() - self._started,
            log="\n".join(logs)[-6000:],
        )


def run(scenario_path: Path, remote: str, **kwargs: object) -> SippResult:
    return Sipp(scenario_path, remote, **kwargs).start().wait()  # type: ignore[arg-type]
