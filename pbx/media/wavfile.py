"""Crash-safe stereo WAV files: a header that is valid after every append, and repair.

The recorder writes canonical 44-byte-header PCM WAV files (RIFF/WAVE with
one `fmt ` chunk of 16 bytes and one `data` chunk: the layout of the
Microsoft RIFF spec, "Multimedia Programming Interface and Data
Specifications 1.0", 1991, and of every telephony recorder). Each append
writes the samples first (one pwrite at the end of the data) and then updates
the two size fields (RIFF size at offset 4, data size at offset 40) in the
header, which is memory-mapped (MAP_SHARED, so the store lands in the page
cache like a write would, without a system call), so the
operating system always holds a playable file: a crash of DeskPBX between the
two writes leaves a header that undercounts by one append, which readers
accept and `repair` corrects. No fsync per append (the OS keeps the data if
the process dies); `close` fsyncs once.

`repair` rebuilds the sizes from the file length (dropping a torn trailing
frame) for files left by a crash.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from typing_extensions import Buffer  # bytes, memoryview, an ndarray: any buffer

HEADER_SIZE = 44
RATE = 8000
CHANNELS = 2
SAMPLE_WIDTH = 2
FRAME_SIZE = CHANNELS * SAMPLE_WIDTH

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_SIZE = struct.Struct("<I")


class WavError(ValueError):
    """A file that is not a WAV file this module wrote (wrong magic, odd format)."""


def build_header(data_bytes: int, rate: int = RATE, channels: int = CHANNELS) -> bytes:
    """The 44-byte header of a 16-bit PCM file holding `data_bytes` of samples."""
    block = channels * SAMPLE_WIDTH
    return _HEADER.pack(
        b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels, rate,
        rate * block, block, 8 * SAMPLE_WIDTH, b"data", data_bytes,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a header says: the rate, channel count and how many data bytes follow."""

    rate: int
    channels: int
    data_bytes: int

    @property
    def frames(self) -> int:
        return self.data_bytes // (self.channels * SAMPLE_WIDTH)

    @property
    def duration(self) -> float:
        return self.frames / self.rate


def read_info(path: Path) -> WavInfo:
    """Parse the canonical header of `path`; WavError if it is not one of ours."""
    with open(path, "rb") as file:
        head = file.read(HEADER_SIZE)
    if len(head) < HEADER_SIZE:
        raise WavError(f"{path}: {len(head)} bytes, shorter than a WAV header")
    fields = _HEADER.unpack(head)
    riff, _size, wave, fmt, fmt_len, tag, channels, rate, _bps, _block, bits, data, size = fields
    if (riff, wave, fmt, data) != (b"RIFF", b"WAVE", b"fmt ", b"data") or fmt_len != 16:
        raise WavError(f"{path}: not a canonical RIFF/WAVE file")
    if tag != 1 or bits != 16:
        raise WavError(f"{path}: not 16-bit PCM (format {tag}, {bits} bits)")
    return WavInfo(rate=rate, channels=channels, data_bytes=size)


class WavWriter:
    """An open stereo 16-bit WAV file whose header is rewritten after every append."""

    def __init__(self, path: Path, rate: int = RATE) -> None:
        self.path = path
        self.rate = rate
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed by close()
        self._fd = self._file.fileno()
        self._file.write(build_header(0, rate))
        # the header, mapped shared: updating its sizes is a store to the page cache, which
        # a killed process leaves behind like a write(), at no system call per append
        self._header = mmap.mmap(self._file.fileno(), HEADER_SIZE)
        self.data_bytes = 0

    @property
    def frames(self) -> int:
        return self.data_bytes // FRAME_SIZE

    @property
    def closed(self) -> bool:
        return self._file.closed

    def append(self, frames: np.ndarray) -> None:
        """Append interleaved int16 frames (shape (n, 2)) and make the header count them."""
        self.append_bytes(np.ascontiguousarray(frames, dtype="<i2").tobytes())

    def append_bytes(self, data: Buffer | np.ndarray) -> None:
        """Append whole little-endian 16-bit stereo frames (any contiguous buffer: bytes,
        a memoryview, an int16 array on a little-endian host) and make the header count
        them: one pwrite, then two stores to the mapped header."""
        view = memoryview(cast("Buffer", data))  # numpy's stubs lack __buffer__ before 3.12
        size = view.nbytes
        if not size:
            return
        if size % FRAME_SIZE:
            raise ValueError(f"{size} bytes are not whole {FRAME_SIZE}-byte frames")
        at = HEADER_SIZE + self.data_bytes
        written = os.pwrite(self._fd, view, at)
        if written != size:  # a short write (disk full): the rest, or the error
            _write_rest(self._fd, view.cast("B")[written:], at + written)
        self.data_bytes = total = self.data_bytes + size
        _SIZE.pack_into(self._header, 4, 36 + total)
        _SIZE.pack_into(self._header, 40, total)

    def close(self, sync: bool = True) -> None:
        """Close, with one fsync unless the caller syncs later (`sync_file`, off the loop);
        the header is already right either way."""
        if self._file.closed:
            return
        try:
            self._header.flush()  # msync: the mapped header reaches the file's dirty pages
            self._header.close()
            if sync:
                os.fsync(self._file.fileno())
        finally:
            self._file.close()


def _write_rest(fd: int, data: memoryview, offset: int) -> int:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)
    return done


def sync_file(path: Path) -> None:
    """fsync a closed file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def repair(path: Path) -> WavInfo:
    """Rewrite the header sizes of `path` from its length; drop a torn last frame.

    A file shorter than a header (the process died right after creating it)
    gets a fresh empty header. Returns what the header now says.
    """
    size = path.stat().st_size
    if size < HEADER_SIZE:
        with open(path, "wb") as file:
            file.write(build_header(0))
        return WavInfo(RATE, CHANNELS, 0)
    try:
        info = read_info(path)
        rate, channels = info.rate, info.channels
    except WavError:
        rate, channels = RATE, CHANNELS  # a torn header: ours are always 8 kHz stereo
    block = channels * SAMPLE_WIDTH
    data_bytes = (size - HEADER_SIZE) // block * block
    with open(path, "r+b") as file:
        file.truncate(HEADER_SIZE + data_bytes)
        file.seek(0)
        file.write(build_header(data_bytes, rate, channels))
        file.flush()
        os.fsync(file.fileno())
    return WavInfo(rate, channels, data_bytes)


def read_frames(path: Path) -> tuple[np.ndarray, int]:
    """All samples of `path` as an int16 array of shape (frames, channels), and the rate."""
    info = read_info(path)
    with open(path, "rb") as file:
        file.seek(HEADER_SIZE)
        raw = file.read(info.data_bytes)
    usable = len(raw) // (info.channels * SAMPLE_WIDTH) * info.channels * SAMPLE_WIDTH
    samples = np.frombuffer(raw[:usable], dtype="<i2").astype(np.int16)
    return samples.reshape(-1, info.channels), info.rate
