"""`deskpbx rec` through pbx.cli.main: list, export and play, with exact output and exit codes."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from pbx.cli import main
from pbx.commands.rec import format_size
from pbx.media.wavfile import WavWriter
from pbx.store import Store

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


pytestmark = pytest.mark.usefixtures("local_time_utc")


def run(tmp_path: Path, *argv: str) -> int:
    return main(["--data-dir", str(tmp_path), "rec", *argv])


def make_wav(path: Path, frames: np.ndarray) -> str:
    writer = WavWriter(path)
    writer.append(frames)
    writer.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def recorded(tmp_path: Path) -> np.ndarray:
    """Three recordings: finished (id 1), repaired (2), in progress (3); and a missing file (4)."""
    frames = np.arange(16000, dtype=np.int16).reshape(8000, 2)
    wav = tmp_path / "recordings" / "one.wav"
    digest = make_wav(wav, frames)
    with Store.in_dir(tmp_path) as store:
        one = store.add_recording("c1@h", str(wav), T0, caller="1001", callee="1002")
        store.finish_recording(one.id, duration=1.0, size=wav.stat().st_size, sha256=digest)
        two_path = tmp_path / "recordings" / "two.wav"
        make_wav(two_path, frames[:800])
        two = store.add_recording("c2@h", str(two_path), T0 + 60, caller="1002", callee="1003")
        store.finish_recording(two.id, duration=0.1, size=3244, sha256="", repaired=True)
        three = tmp_path / "recordings" / "three.wav"
        make_wav(three, frames[:8])
        store.add_recording("c3@h", str(three), T0 + 120, caller="1003", callee="1001")
        store.add_recording("c4@h", str(tmp_path / "gone.wav"), T0 + 180, caller="1", callee="2")
    return frames


def test_list_prints_newest_first_with_states(tmp_path, recorded, capsys):
    assert run(tmp_path, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "TIME", "CALLER", "CALLEE", "DURATION", "SIZE", "STATE",
                                "FILE"]  # fmt: skip
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == ["4", "3", "2", "1"]
    assert [row[-2] for row in rows] == ["missing", "open", "repaired", "ok"]
    assert rows[3][:8] == ["1", "2027-01-15", "08:00:00", "1001", "1002", "0:01", "31.3", "KiB"]


def test_list_json_and_limit(tmp_path, recorded, capsys):
    assert run(tmp_path, "list", "--json", "--limit", "2") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["call_id"], r["state"]) for r in rows] == [(4, "c4@h", "missing"),
                                                                   (3, "c3@h", "open")]  # fmt: skip


def test_list_when_empty(tmp_path, capsys):
    assert run(tmp_path, "list") == 0
    assert capsys.readouterr().out == "no recordings\n"


def test_export_copies_the_file(tmp_path, recorded, capsys):
    target = tmp_path / "out.wav"
    assert run(tmp_path, "export", "1", str(target)) == 0
    assert capsys.readouterr().out == f"exported recording 1 to {target}\n"
    assert target.read_bytes() == (tmp_path / "recordings" / "one.wav").read_bytes()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export", "x", "f.wav"], "recording id must be a number, not 'x'"),
        (["export", "9", "f.wav"], "no recording 9"),
        (["play", "4"], "recording 4: file {tmp}/gone.wav is missing"),
    ],
)
def test_bad_ids_are_one_line_errors(tmp_path, recorded, capsys, argv, message):
    assert run(tmp_path, *argv) == 2
    assert capsys.readouterr().err == f"deskpbx: {message.format(tmp=tmp_path)}\n"


def test_export_refuses_to_overwrite_and_to_copy_a_changed_file(tmp_path, recorded, capsys):
    target = tmp_path / "exists.wav"
    target.write_bytes(b"keep")
    assert run(tmp_path, "export", "1", str(target)) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert target.read_bytes() == b"keep"
    with open(tmp_path / "recordings" / "one.wav", "r+b") as file:
        file.seek(100)
        file.write(b"tampered")
    assert run(tmp_path, "export", "1", str(target), "--force") == 2
    assert "SHA-256 mismatch" in capsys.readouterr().err
    assert target.read_bytes() == b"keep"


def fake_sounddevice(monkeypatch, *, device: bool) -> list:
    played: list = []
    module = types.ModuleType("sounddevice")

    def query_devices(kind=None):
        if not device:
            raise RuntimeError("Error querying device -1")
        return {"name": "fake"}

    def play(data, samplerate, blocking=False):
        played.append((np.array(data), samplerate, blocking))

    module.query_devices = query_devices  # type: ignore[attr-defined]
    module.play = play  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    return played


def test_play_sends_the_stereo_frames_to_the_sound_card(tmp_path, recorded, monkeypatch):
    played = fake_sounddevice(monkeypatch, device=True)
    assert run(tmp_path, "play", "1") == 0
    [(data, rate, blocking)] = played
    assert rate == 8000 and blocking is True
    np.testing.assert_array_equal(data, recorded)


def test_play_without_a_device_says_so_in_one_line(tmp_path, recorded, monkeypatch, capsys):
    played = fake_sounddevice(monkeypatch, device=False)
    assert run(tmp_path, "play", "1") == 1
    err = capsys.readouterr().err
    assert err.startswith("deskpbx: cannot play recording 1: no sound output device")
    assert err.count("\n") == 1 and played == []


def test_play_without_sounddevice_says_so_in_one_line(tmp_path, recorded, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    assert run(tmp_path, "play", "1") == 1
    err = capsys.readouterr().err
    assert err.startswith("deskpbx: cannot play recording 1: sound output needs the sounddevice")
    assert err.count("\n") == 1


def test_format_size():
    assert [format_size(n) for n in (0, 1023, 1536, 5 * 1024**2, 3 * 1024**3)] == [
        "0 B", "1023 B", "1.5 KiB", "5.0 MiB", "3.0 GiB"]  # fmt: skip
