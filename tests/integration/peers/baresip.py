"""Drive a real baresip user agent for integration tests.

Each instance gets its own config directory, SIP port and RTP port range on
127.0.0.1. Its microphone is `ausine` (a sine tone at a chosen frequency), its
speaker is the null `aubridge`, and the `sndfile` module dumps what it decoded
to a WAV file, so a test can check by FFT which tone each side heard. It is
controlled through `ctrl_tcp`: netstring-framed JSON commands and events.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BARESIP = shutil.which("baresip")
MODULE_PATH = "/usr/lib/baresip/modules"


@dataclass
class BaresipConfig:
    name: str
    sip_port: int
    ctrl_port: int
    rtp_low: int
    tone_hz: int
    account: str  # the accounts-file line, e.g. "<sip:1001@127.0.0.1:5060>;auth_pass=..."


@dataclass
class Baresip:
    """One baresip process; use as a context manager."""

    config: BaresipConfig
    workdir: Path
    events: list[dict] = field(default_factory=list)
    _proc: subprocess.Popen | None = None
    _sock: socket.socket | None = None
    _reader: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _token: int = 0

    def __enter__(self) -> Baresip:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def dir(self) -> Path:
        return self.workdir / self.config.name

    def write_config(self) -> None:
        c = self.config
        self.dir.mkdir(parents=True, exist_ok=True)
        lines = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{c.sip_port}",
            "call_local_timeout 60",
            "audio_player aubridge,nil",
            f"audio_source ausine,{c.tone_hz}",
            "audio_alert aubridge,nil",
            "ausrc_srate 48000",
            "auplay_srate 48000",
            "ausrc_channels 2",
            "auplay_channels 2",
            f"rtp_ports {c.rtp_low}-{c.rtp_low + 10}",
            "net_interface 127.0.0.1",
            f"module_path {MODULE_PATH}",
            "module g711.so",
            "module ausine.so",
            "module aubridge.so",
            "module sndfile.so",
            "module_tmp account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{c.ctrl_port}",
            f"snd_path {self.dir}",
        ]
        (self.dir / "config").write_text("\n".join(lines) + "\n")
        (self.dir / "accounts").write_text(c.account + "\n")

    def start(self, timeout: float = 10.0) -> None:
        if BARESIP is None:
            raise RuntimeError("baresip is not installed (Debian package baresip-core)")
        self.write_config()
        with open(self.dir / "baresip.log", "wb") as log:
            self._proc = subprocess.Popen(
                [BARESIP, "-f", str(self.dir)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.create_connection(("127.0.0.1", self.config.ctrl_port), 1)
                break
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(
                        f"baresip {self.config.name} did not start: {self.log()}"
                    ) from None
                time.sleep(0.05)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_events, args=(self._sock,), daemon=True)
        self._reader.start()

    def log(self) -> str:
        path = self.dir / "baresip.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _read_events(self, sock: socket.socket) -> None:
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b":" in buf:
                size_text, _, rest = buf.partition(b":")
                size = int(size_text)
                if len(rest) < size + 1:
                    break
                payload, buf = rest[:size], rest[size + 1 :]
                with self._lock:
                    self.events.append(json.loads(payload))

    def responses(self) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e.get("response")]

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Poll `reginfo` until the account is registered (its REGISTER may predate our socket)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = len(self.responses())
            self.command("reginfo")
            while len(self.responses()) == before and time.monotonic() < deadline:
                time.sleep(0.02)
            last = self.responses()[-1] if self.responses() else {}
            if "OK" in str(last.get("data", "")):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.config.name}: not registered in {timeout} s: {self.log()}")

    def command(self, command: str, params: str = "") -> None:
        assert self._sock is not None
        self._token += 1
        body = json.dumps({"command": command, "params": params, "token": str(self._token)})
        data = body.encode()
        self._sock.sendall(str(len(data)).encode() + b":" + data + b",")

    def dial(self, uri: str) -> None:
        self.command("dial", uri)

    def hangup(self) -> None:
        self.command("hangup")

    def wait_event(self, event_type: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for event in self.events:
                    if event.get("type") == event_type:
                        return event
            time.sleep(0.02)
        seen = [e.get("type") for e in self.events]
        raise TimeoutError(f"{self.config.name}: no {event_type} in {timeout} s; saw {seen}")

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self.command("quit")
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(3)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(3)
            self._proc = None

    def decoded_audio(self) -> tuple[np.ndarray, int]:
        """What this instance decoded from the far end (the sndfile dump), as mono samples."""
        dumps = sorted(self.dir.glob("dump-*-dec.wav"))
        if not dumps:
            raise FileNotFoundError(f"{self.config.name}: no decoded-audio dump")
        with wave.open(str(dumps[-1])) as w:
            frames = w.readframes(w.getnframes())
            samples = np.frombuffer(frames, dtype=np.int16).reshape(-1, w.getnchannels())
            return samples[:, 0].astype(np.float64), w.getframerate()


def established(caller: Baresip, callee: Baresip, uri: str) -> None:
    """Both phones registered, `caller` dials `uri`, and both see the call up."""
    caller.wait_registered()
    callee.wait_registered()
    caller.dial(uri)
    caller.wait_event("CALL_ESTABLISHED")
    callee.wait_event("CALL_ESTABLISHED")


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency in a signal, ignoring DC."""
    if len(samples) < rate // 10:
        raise ValueError(f"only {len(samples)} samples: too short to measure a tone")
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    freqs = np.fft.rfftfreq(len(samples), 1.0 / rate)
    spectrum[freqs < 50] = 0
    return float(freqs[int(spectrum.argmax())])
