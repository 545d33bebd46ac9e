"""Audio plumbing: FIFOs, resampling, meters, the ring tone, and the real sounddevice path
through ALSA's file plugin (no sound card, no daemon: Debian's libportaudio2 + alsa-lib)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from app.audio import (
    MemoryDevice,
    Ringer,
    SampleFifo,
    SoundCardDevice,
    level_dbfs,
    resample,
    ring_tone,
)
from pbx.ua import dominant_frequency

REPO = Path(__file__).resolve().parents[2]


def tone(freq: float, rate: int, seconds: float, amplitude: float = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def test_fifo_gives_exact_blocks_and_drops_the_oldest_when_full() -> None:
    fifo = SampleFifo(max_chunks=3)
    for start in range(0, 500, 100):
        fifo.push(np.arange(start, start + 100, dtype=np.int16))
    assert fifo.dropped == 2
    block = fifo.pull(150)
    assert block is not None and block[0] == 200 and block[-1] == 349
    assert fifo.pull(200) is None  # only 150 left: nothing consumed
    rest = fifo.pull(150)
    assert rest is not None and rest[0] == 350 and rest[-1] == 499


def test_resample_keeps_the_tone_and_the_length() -> None:
    wide = tone(1000, 48000, 0.5)
    narrow = resample(wide, 48000, 8000)
    assert narrow.size == 4000
    assert abs(dominant_frequency(narrow, 8000) - 1000) < 5
    back = resample(narrow, 8000, 44100)
    assert back.size == 22050
    assert abs(dominant_frequency(back, 44100) - 1000) < 5


def test_level_meter_in_dbfs() -> None:
    assert level_dbfs(np.zeros(160, dtype=np.int16)) == -120.0
    full_sine = tone(1000, 8000, 0.1, amplitude=32767)
    assert level_dbfs(full_sine) == pytest.approx(-3.01, abs=0.05)
    assert level_dbfs(tone(1000, 8000, 0.1, amplitude=3277)) == pytest.approx(-23.0, abs=0.1)


def test_memory_device_at_48k_gives_call_frames() -> None:
    device = MemoryDevice(48000)
    device.feed_microphone(tone(1000, 48000, 0.1))
    frames = [device.read_microphone() for _ in range(5)]
    assert all(f is not None and f.size == 160 for f in frames)
    assert device.read_microphone() is None
    device.play(tone(440, 8000, 0.02))
    assert device.heard().size == 960


def test_ring_tone_cadence() -> None:
    ring = ring_tone(8000)
    assert ring.size == 48000
    assert abs(np.abs(ring[:16000]).max() - 6000) < 100
    assert not ring[16000:].any()


class FakeSd:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[str] = []

    def query_devices(self, device, kind):
        if self.fail:
            raise RuntimeError("Error querying device -1")
        return {"default_samplerate": 44100.0}

    def play(self, data, rate, loop, device):
        self.calls.append(f"play {data.size} {rate} {loop}")

    def stop(self):
        self.calls.append("stop")


def test_ringer_plays_and_stops_and_survives_no_card() -> None:
    sd = FakeSd()
    ringer = Ringer(None, backend=lambda: sd)
    ringer.start()
    ringer.start()
    ringer.stop()
    assert sd.calls == ["play 264600 44100 True", "stop"]
    quiet = Ringer(None, backend=lambda: FakeSd(fail=True))
    quiet.start()  # no exception
    assert quiet.ringing


def test_sound_card_device_without_a_card_says_why() -> None:
    device = SoundCardDevice(backend=lambda: FakeSd(fail=True))
    assert device.read_microphone() is None
    assert device.problem == "cannot open the sound device: Error querying device -1"


ALSA_CONF = """
pcm.!default {{ type asym playback.pcm "speaker" capture.pcm "mic" }}
pcm.speaker {{ type file slave.pcm "null" file "{out}" format "raw" }}
pcm.mic {{ type file slave.pcm "null" file "/dev/null" infile "{inp}" format "raw" }}
pcm.null {{ type null }}
"""

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from app.audio import SoundCardDevice
    # the echo canceller's noise suppressor bends a steady tone by a few Hz: off here,
    # where the resampling path is what is measured (test_echo covers the canceller)
    device = SoundCardDevice(buffer_ms=2000, echo_cancellation=False)
    got = []
    deadline = time.monotonic() + 10
    while len(got) < 50 and time.monotonic() < deadline:
        frame = device.read_microphone()
        if frame is None:
            time.sleep(0.002)
            continue
        got.append(frame)
    t = np.arange(160 * 50) / 8000
    out = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    for start in range(0, out.size, 160):
        device.play(out[start:start + 160])
    time.sleep(0.5)
    device.close()
    np.save(sys.argv[1], np.concatenate(got))
    print(device.rate)
    """
)


def test_real_sounddevice_path_through_alsa_file_plugin(tmp_path: Path) -> None:
    """The microphone file's tone reaches read_microphone at 8 kHz; what play() gets is
    written by ALSA, resampled to the device's native rate (44.1 or 48 kHz)."""
    if not Path("/usr/share/alsa/alsa.conf").exists():
        pytest.skip("alsa-lib configuration not installed")
    pytest.importorskip("sounddevice", reason="sounddevice needs Debian's libportaudio2")
    inp, out = tmp_path / "in.raw", tmp_path / "out.raw"
    inp.write_bytes(tone(1000, 48000, 20).astype("<i2").tobytes())
    conf = tmp_path / "asound.conf"
    conf.write_text(ALSA_CONF.format(out=out, inp=inp))
    env = dict(os.environ, ALSA_CONFIG_PATH=str(conf), PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "mic.npy")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0 and "PortAudio" in result.stderr:
        pytest.skip(f"PortAudio unusable here: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    rate = int(result.stdout.split()[-1])
    mic = np.load(tmp_path / "mic.npy")
    assert mic.size == 160 * 50
    # the raw file has no rate: its 48 kHz samples are played at the device's rate
    assert abs(dominant_frequency(mic[-4000:], 8000) - 1000 * rate / 48000) < 10
    written = np.frombuffer(out.read_bytes(), dtype="<i2")
    loud = written[np.abs(written) > 1000]
    assert loud.size > 0.5 * 50 * 20 * rate // 1000  # most of the 1 s of played tone
    first = int(np.argmax(np.abs(written) > 1000))
    assert abs(dominant_frequency(written[first : first + rate // 2], rate) - 440) < 10


class FakeStreamSd:
    """sounddevice with a Stream whose device can be unplugged by the test."""

    def __init__(self) -> None:
        self.opened: list[tuple] = []
        self.streams: list = []

    def query_devices(self, device, kind):
        return {"default_samplerate": 16000.0 if device == "USB headset" else 48000.0}

    def Stream(self, samplerate, channels, dtype, blocksize, device, callback, finished_callback):  # noqa: N802
        sd = self

        class Stream:
            def __init__(self) -> None:
                self.closed = False

            def start(self) -> None:
                sd.opened.append((device, samplerate, blocksize))

            def close(self) -> None:
                self.closed = True

            def unplug(self) -> None:
                finished_callback()

            def run(self, mic) -> np.ndarray:
                out = np.zeros((blocksize, 1), dtype=np.int16)
                callback(mic.reshape(-1, 1), out, blocksize, None, None)
                return out[:, 0]

        self.streams.append(Stream())
        return self.streams[-1]


def test_sound_card_switches_devices_and_falls_back_when_unplugged() -> None:
    sd = FakeStreamSd()
    device = SoundCardDevice("USB headset", "USB headset", echo_cancellation=False,
                             backend=lambda: sd)  # fmt: skip
    assert device.read_microphone() is None  # opens the stream; nothing captured yet
    assert sd.opened == [(("USB headset", "USB headset"), 16000, 320)]
    sd.streams[0].run(tone(1000, 16000, 0.02))
    frame = device.read_microphone()
    assert frame is not None and frame.size == 160
    device.play(tone(440, 8000, 0.02))
    assert abs(dominant_frequency(sd.streams[0].run(np.zeros(320, np.int16)), 16000) - 440) < 60
    sd.streams[0].unplug()  # the headset is pulled out mid-call
    device.read_microphone()
    assert sd.streams[0].closed
    assert sd.opened[-1] == ((None, None), 48000, 960)  # the system default, same call
    device.switch("USB headset", None)
    assert sd.opened[-1] == (("USB headset", None), 48000, 960)
    device.idle()
    assert device.stream is None
    device.switch(None, None)  # no call: nothing is opened until audio is needed
    assert len(sd.opened) == 3
