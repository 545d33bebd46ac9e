"""Call recording end to end: two baresip phones, a real PBX, a stereo WAV checked by FFT.

The caller's microphone is a 440 Hz sine, the callee's 1000 Hz (baresip's
ausine). With the callee's extension on record policy 'always', the PBX must
leave a recording whose left channel carries 440 Hz and right channel
1000 Hz, as long as the CDR's billsec to within 100 ms, linked from the CDR
and indexed with its SHA-256. A second test kills `deskpbx serve` with
SIGKILL mid-call: the file it leaves must already be playable, and the next
start must repair and index it and write the call's CDR from it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from pbx.media.wavfile import read_frames
from pbx.store import Disposition, Store
from tests.integration.pbx_harness import PASSWORDS, rtp_block, start_pbx
from tests.integration.peers.baresip import (
    BARESIP,
    Baresip,
    BaresipConfig,
    dominant_frequency,
    established,
)
from tests.integration.ports import free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BARESIP is None, reason="baresip not installed (baresip-core)"),
]

CALLER_HZ, CALLEE_HZ = 440, 1000


def phone(tmp_path: Path, number: str, pbx_port: int, tone: int, rtp_low: int) -> Baresip:
    account = (
        f"<sip:{number}@127.0.0.1:{pbx_port}>;auth_pass={PASSWORDS[number]};"
        "regint=300;answermode=auto;audio_codecs=PCMU,PCMA"
    )
    config = BaresipConfig(number, free_port(step=2), free_port(), rtp_low, tone, account)
    return Baresip(config, tmp_path)


def prepare(data_dir: Path) -> None:
    """Extensions 1001-1009 with 1002 (the callee) recorded always."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with Store.in_dir(data_dir) as store:
        for number, password in PASSWORDS.items():
            store.add_extension(number, password, f"Phone {number}")
        store.update_extension("1002", record_policy="always")


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError("condition not met in time")


def channel_tones(path: Path) -> tuple[float, float, int]:
    frames, rate = read_frames(path)
    assert rate == 8000 and frames.shape[1] == 2
    middle = frames[len(frames) // 4 : 3 * len(frames) // 4].astype(np.float64)
    return (
        dominant_frequency(middle[:, 0], rate),
        dominant_frequency(middle[:, 1], rate),
        len(frames),
    )


def test_recording_has_caller_left_callee_right_and_the_call_length(tmp_path):
    data_dir = tmp_path / "pbx"
    prepare(data_dir)
    pbx = start_pbx(data_dir)
    alice = phone(tmp_path, "1001", pbx.port, CALLER_HZ, 32100)
    bob = phone(tmp_path, "1002", pbx.port, CALLEE_HZ, 32120)
    try:
        with alice, bob:
            established(alice, bob, f"sip:1002@127.0.0.1:{pbx.port}")
            time.sleep(3.0)
            alice.hangup()
            bob.wait_event("CALL_CLOSED")
        [cdr] = pbx.wait_cdrs(1)
        with Store.in_dir(data_dir) as store:
            wait_until(lambda: all(r.complete for r in store.list_recordings()))
            [row] = store.list_recordings()
    finally:
        pbx.stop()
    assert cdr.disposition is Disposition.ANSWERED and cdr.recording == row.path
    path = Path(row.path)
    assert path.parent.parent.parent.parent == data_dir / "recordings"  # YYYY/MM/DD
    assert row.call_id == cdr.call_id and row.caller == "1001" and row.callee == "1002"
    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    left, right, frames = channel_tones(path)
    assert abs(left - CALLER_HZ) < 20, f"left channel is {left} Hz"
    assert abs(right - CALLEE_HZ) < 20, f"right channel is {right} Hz"
    assert abs(frames / 8000 - cdr.billsec) <= 0.1, (frames / 8000, cdr.billsec)
    assert row.duration == pytest.approx(frames / 8000)


def test_a_killed_pbx_leaves_a_playable_recording_repaired_at_restart(tmp_path):
    data_dir = tmp_path / "pbx"
    prepare(data_dir)
    port = free_port()
    low, high = rtp_block()
    repo = Path(__file__).resolve().parents[2]
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "pbx.cli", "--data-dir", str(data_dir), "serve",
         "--sip", f"127.0.0.1:{port}", "--rtp-ports", f"{low}-{high}", "--qualify-interval", "0",
         "--http", "off"],  # a shared host may have 8080 taken
        cwd=repo, stdout=subprocess.DEVNULL, stderr=log,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    alice = phone(tmp_path, "1001", port, CALLER_HZ, 32140)
    bob = phone(tmp_path, "1002", port, CALLEE_HZ, 32160)
    try:
        time.sleep(1.0)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        with alice, bob:
            alice.wait_registered()
            bob.wait_registered()
            alice.dial(f"sip:1002@127.0.0.1:{port}")
            alice.wait_event("CALL_ESTABLISHED")
            bob.wait_event("CALL_ESTABLISHED")
            time.sleep(3.0)
            server.send_signal(signal.SIGKILL)
            server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        log.close()
    with Store.in_dir(data_dir) as store:
        [row] = store.list_recordings()
    assert not row.complete
    path = Path(row.path)
    with wave.open(str(path), "rb") as reader:  # playable as the crash left it
        assert reader.getnchannels() == 2 and reader.getnframes() >= 2 * 8000
    left, right, _frames = channel_tones(path)
    assert abs(left - CALLER_HZ) < 20 and abs(right - CALLEE_HZ) < 20
    pbx = start_pbx(data_dir)  # the restart runs the startup check
    try:
        with Store.in_dir(data_dir) as store:
            repaired = store.get_recording(row.id)
        [cdr] = pbx.cdrs()  # the call's CDR, recovered from its recording
    finally:
        pbx.stop()
    assert repaired is not None and repaired.complete and repaired.repaired
    # The call lasted 3 s; the format promises that a crash loses at most about a second
    # (flush interval + reorder window, 0.7 s): what was flushed before the kill is kept.
    assert repaired.duration >= 3.0 - 1.0 and repaired.size == path.stat().st_size
    assert repaired.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (cdr.call_id, cdr.caller, cdr.callee) == (row.call_id, "1001", "1002")
    assert cdr.disposition is Disposition.ANSWERED and cdr.recording == row.path
    assert cdr.billsec == pytest.approx(repaired.duration, abs=0.01)
    assert "recovered at restart" in cdr.sip_reason
