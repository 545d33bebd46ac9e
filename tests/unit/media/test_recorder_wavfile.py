"""The recorder's WAV files: valid after every append, repaired after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from pbx.media.wavfile import (
    HEADER_SIZE,
    WavError,
    WavWriter,
    build_header,
    read_frames,
    read_info,
    repair,
)


def frames_of(count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-30000, 30000, size=(count, 2), dtype=np.int16)


def wave_frames(path: Path) -> tuple[int, bytes]:
    with wave.open(str(path), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (2, 2, 8000)
        count = reader.getnframes()
        return count, reader.readframes(count)


def test_header_matches_the_stdlib_after_every_append(tmp_path):
    path = tmp_path / "a" / "b.wav"
    writer = WavWriter(path)
    assert wave_frames(path) == (0, b"")
    data = frames_of(1000)
    total = 0
    for size in (1, 159, 160, 0, 680):
        writer.append(data[total : total + size])
        total += size
        count, raw = wave_frames(path)
        assert count == total == writer.frames
        assert raw == data[:total].astype("<i2").tobytes()
    writer.close()
    assert writer.closed and path.stat().st_size == HEADER_SIZE + 4 * total


@pytest.mark.skipif(sys.byteorder != "little", reason="the ring is written as native int16")
def test_append_bytes_takes_a_slice_of_interleaved_samples_or_a_memoryview(tmp_path):
    """The recorder hands its ring's int16 slice (no bytes copy); the size counted is the
    slice's octets, not its element count."""
    path = tmp_path / "ring.wav"
    writer = WavWriter(path)
    ring = frames_of(400).reshape(-1)  # interleaved L, R as the recorder's ring holds them
    writer.append_bytes(ring[: 2 * 150])
    writer.append_bytes(memoryview(ring[2 * 150 : 2 * 400]).cast("B"))
    count, raw = wave_frames(path)
    assert count == 400 == writer.frames and writer.data_bytes == 1600
    assert raw == ring.astype("<i2").tobytes()
    with pytest.raises(ValueError, match="6 bytes are not whole 4-byte frames"):
        writer.append_bytes(ring[:3])
    assert wave_frames(path)[0] == 400
    writer.close()


def test_build_header_is_what_the_stdlib_writes(tmp_path):
    path = tmp_path / "std.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x01\x00" * 20)
    assert path.read_bytes()[:HEADER_SIZE] == build_header(40)


def test_repair_rebuilds_sizes_from_the_length_and_drops_a_torn_frame(tmp_path):
    path = tmp_path / "crash.wav"
    data = frames_of(2000)
    writer = WavWriter(path)
    writer.append(data[:1200])
    with open(path, "r+b") as file:  # the crash: samples written, header not updated, torn tail
        file.seek(0, os.SEEK_END)
        file.write(data[1200:].astype("<i2").tobytes() + b"\x01\x02\x03")
        file.seek(4)
        file.write(b"\xff\xff\xff\xff")
    assert read_info(path).frames == 1200
    info = repair(path)
    assert (info.frames, info.rate, info.channels) == (2000, 8000, 2)
    assert info.duration == pytest.approx(0.25)
    count, raw = wave_frames(path)
    assert count == 2000 and raw == data.astype("<i2").tobytes()
    assert path.stat().st_size == HEADER_SIZE + 8000


def test_repair_of_a_file_cut_inside_its_header_leaves_an_empty_playable_file(tmp_path):
    path = tmp_path / "cut.wav"
    path.write_bytes(build_header(0)[:20])
    assert repair(path).frames == 0
    assert wave_frames(path) == (0, b"")


def test_repair_of_a_torn_header_assumes_our_format(tmp_path):
    path = tmp_path / "torn.wav"
    path.write_bytes(b"\x00" * HEADER_SIZE + frames_of(10).astype("<i2").tobytes())
    assert repair(path).frames == 10
    assert wave_frames(path)[0] == 10


def test_read_info_refuses_other_files(tmp_path):
    path = tmp_path / "x.wav"
    path.write_bytes(b"RIFX" + b"\x00" * 60)
    with pytest.raises(WavError, match="not a canonical RIFF/WAVE"):
        read_info(path)
    path.write_bytes(b"RIFF")
    with pytest.raises(WavError, match="shorter than a WAV header"):
        read_info(path)


CHILD = """
import sys, time
import numpy as np
from pathlib import Path
from pbx.media.wavfile import WavWriter
writer = WavWriter(Path(sys.argv[1]))
block = np.arange(320, dtype=np.int16).reshape(160, 2)
for n in range(100000):
    writer.append(block)
    if n == 25:
        print("ready", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_writer_leaves_a_playable_file(tmp_path):
    path = tmp_path / "killed.wav"
    repo = Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(10)
    count, raw = wave_frames(path)  # playable as it is: the header counts whole appends
    assert count >= 26 * 160 and count % 160 == 0
    block = np.arange(320, dtype=np.int16).reshape(160, 2)
    assert raw[: 4 * 160] == block.astype("<i2").tobytes()
    info = repair(path)
    assert info.frames >= count and read_frames(path)[0].shape == (info.frames, 2)
