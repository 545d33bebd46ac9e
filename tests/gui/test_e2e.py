"""The real window, the embedded PBX and a headless UA callee (1002), all on 127.0.0.1.

The softphone is extension 1000 of its own PBX; the callee registers as 1002
with pbx.ua on a loop of its own and answers by itself. The window is driven
offscreen as a user would: dial pad, Enter, Hold, Hang up, History, Answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.audio import MemoryDevice
from app.bridge import LoopThread
from app.main import DeskPhone, build
from app.phone import CallDirection, CallState
from app.settings import AppSettings
from pbx.store import Disposition, Store
from pbx.ua import (
    Account,
    DtmfReceived,
    FrameRecorder,
    HoldChanged,
    IncomingCall,
    ToneSource,
    UserAgent,
    dominant_frequency,
)
from pbx.ua import CallState as UaCallState
from tests.integration.pbx_harness import rtp_block
from tests.integration.ports import free_port

pytestmark = pytest.mark.integration
CALLEE_PASSWORD = "secret-1002"


class Callee:
    """Extension 1002: registers, answers every call, plays 440 Hz, records what it hears."""

    def __init__(self, pbx_port: int) -> None:
        self.runner = LoopThread("callee")
        self.events: list[object] = []
        self.heard = FrameRecorder(30)
        self.calls: list = []
        account = Account("1002", CALLEE_PASSWORD, "127.0.0.1", pbx_port)
        self.ua = UserAgent(account, ("127.0.0.1", 0), self.on_event, (31100, 31199))
        self.run(self.ua.start())
        self.run(self.ua.register())

    def run(self, coro, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.runner.loop).result(timeout)

    def on_event(self, event: object) -> None:
        self.events.append(event)
        if isinstance(event, IncomingCall):
            self.calls.append(event.call)
            event.call.set_source(ToneSource(440.0))
            event.call.set_sink(self.heard)
            self.ua.spawn(event.call.answer())

    def call(self, target: str):
        async def place():
            call = await self.ua.call(target)
            call.set_source(ToneSource(440.0))
            call.set_sink(self.heard)
            return call

        call = self.run(place())
        self.calls.append(call)
        return call

    def close(self) -> None:
        try:
            self.run(self.ua.aclose(timeout=1.0))
        finally:
            self.runner.stop()


@pytest.fixture
def device() -> MemoryDevice:
    return MemoryDevice(48000)


@pytest.fixture
def desk(qtbot, tmp_path: Path, device: MemoryDevice) -> Iterator[DeskPhone]:
    data_dir = tmp_path / "pbx"
    data_dir.mkdir()
    with Store.in_dir(data_dir) as store:
        store.add_extension("1002", CALLEE_PASSWORD, "Kitchen")
    settings = AppSettings(pbx_listen=f"127.0.0.1:{free_port()}")
    phone = build(
        settings, data_dir, tmp_path / "config", use_tray=False, rtp_ports=rtp_block(),
        ua_rtp_ports=(31000, 31099), audio=device, pbx_overrides={"qualify_interval": 0},
    )  # fmt: skip
    qtbot.addWidget(phone.window)
    phone.window.show()
    qtbot.waitUntil(lambda: phone.window.registration_label.text().startswith("Registered"),
                    timeout=10000)  # fmt: skip
    yield phone
    phone.shutdown()


@pytest.fixture
def callee(desk: DeskPhone) -> Iterator[Callee]:
    assert desk.runtime.pbx is not None
    peer = Callee(desk.runtime.pbx.sip_port())
    yield peer
    peer.close()


def panel_state(desk: DeskPhone) -> CallState | None:
    view = desk.window.panel.view
    return None if view is None else view.state


def test_dial_hold_hang_up_history_and_redial(qtbot, desk: DeskPhone, callee: Callee, device):
    win = desk.window
    device.feed_microphone(
        (8000 * np.sin(2 * np.pi * 1000 * np.arange(48000 * 4) / 48000)).astype(np.int16)
    )
    win.dialpad.number.setFocus()
    qtbot.keyClicks(win.dialpad.number, "1002")
    qtbot.keyClick(win.dialpad.number, "\r")
    qtbot.waitUntil(lambda: panel_state(desk) is CallState.CONNECTED, timeout=10000)
    assert win.panel.title.text() == "1002 — Connected"
    assert win.panel.ticking
    qtbot.wait(1000)  # a second of audio both ways
    assert abs(dominant_frequency(callee.heard.samples()[-4000:]) - 1000) < 20
    heard = device.heard()
    assert heard.size > 48000 * 0.5
    assert abs(dominant_frequency(heard[-24000:], 48000) - 440) < 10

    qtbot.mouseClick(win.panel.keypad_button, qtbot_left())
    keys = {b.accessibleName(): b for b in win.panel.keypad.findChildren(type(win.panel.hold))}
    for key in ("Send tone 5", "Send tone #"):
        qtbot.mouseClick(keys[key], qtbot_left())
    qtbot.waitUntil(lambda: [e.digit for e in callee.events if isinstance(e, DtmfReceived)]
                    == ["5", "#"], timeout=5000)  # fmt: skip
    qtbot.mouseClick(win.panel.hold, qtbot_left())
    qtbot.waitUntil(lambda: panel_state(desk) is CallState.ON_HOLD, timeout=10000)
    qtbot.waitUntil(
        lambda: any(isinstance(e, HoldChanged) and e.remote for e in callee.events), timeout=5000
    )
    assert win.panel.hold.isChecked()
    qtbot.mouseClick(win.panel.hangup, qtbot_left())
    qtbot.waitUntil(lambda: win.panel.view is None, timeout=10000)
    assert not win.panel.isVisible()
    qtbot.waitUntil(lambda: callee.calls[0].state is UaCallState.ENDED, timeout=5000)

    def history_has(count: int) -> bool:
        win.refresh_history()
        return win.history.rowCount() >= count

    qtbot.waitUntil(lambda: history_has(1), timeout=10000)
    entry = win.history.row(0)
    assert (entry.number, entry.direction, entry.result) == ("1002", CallDirection.OUTGOING,
                                                             "Answered")  # fmt: skip
    assert entry.duration >= 0.9
    cdr = desk.runtime.store.query_cdrs(limit=1)[0]
    assert (cdr.caller, cdr.callee, cdr.disposition) == ("1000", "1002", Disposition.ANSWERED)

    win.tabs.setCurrentIndex(1)
    win.history_view.selectRow(0)
    qtbot.mouseClick(win.redial_button, qtbot_left())
    qtbot.waitUntil(lambda: panel_state(desk) is CallState.CONNECTED, timeout=10000)
    assert len(callee.calls) == 2
    qtbot.keyClick(win, "\x1b")  # Esc hangs up
    qtbot.waitUntil(lambda: win.panel.view is None, timeout=10000)
    qtbot.waitUntil(lambda: history_has(2), timeout=10000)


def test_incoming_call_answered_from_the_dialog(qtbot, desk: DeskPhone, callee: Callee):
    win = desk.window
    call = callee.call("1000")
    qtbot.waitUntil(lambda: len(win.incoming) == 1, timeout=10000)
    dialog = next(iter(win.incoming.values()))
    assert dialog.isVisible() and "1002" in dialog.caller.text()
    qtbot.mouseClick(dialog.answer_button, qtbot_left())
    qtbot.waitUntil(lambda: panel_state(desk) is CallState.CONNECTED, timeout=10000)
    assert not win.incoming
    assert call.state is UaCallState.CONNECTED
    callee.run(call.hangup())
    qtbot.waitUntil(lambda: win.panel.view is None, timeout=10000)


def test_directory_and_status_bar_show_the_pbx(qtbot, desk: DeskPhone, callee: Callee):
    win = desk.window
    win.refresh()
    qtbot.waitUntil(lambda: "2 phones" in win.pbx_label.text(), timeout=10000)
    assert win.pbx_label.text() == "PBX: 2 phones, 0 calls"
    rows = {
        win.directory.row(i).number: win.directory.row(i) for i in range(win.directory.rowCount())
    }
    assert rows["1002"].registered == 1 and rows["1002"].name == "Kitchen"
    assert rows["1000"].registered == 1


def test_quit_ends_calls_and_writes_their_cdrs(qtbot, desk: DeskPhone, callee: Callee):
    win = desk.window
    win.dial("1002")
    qtbot.waitUntil(lambda: panel_state(desk) is CallState.CONNECTED, timeout=10000)
    desk.shutdown()
    assert callee.calls[0].state is UaCallState.ENDED or _ends(callee)
    with Store.in_dir(desk.runtime.pbx.config.data_dir) as store:
        cdrs = store.query_cdrs(limit=10)
    assert [(c.caller, c.callee, c.disposition) for c in cdrs] == [
        ("1000", "1002", Disposition.ANSWERED)
    ]


def _ends(callee: Callee) -> bool:
    async def wait() -> bool:
        await callee.calls[0].wait_for(UaCallState.ENDED, timeout=5)
        return True

    return callee.run(wait())


def qtbot_left():
    from app.qt import Qt

    return Qt.MouseButton.LeftButton


def test_without_a_sound_card_the_app_starts_and_says_so(qtbot, tmp_path: Path, monkeypatch):
    from app import audio

    monkeypatch.setattr(audio.SoundDeviceBackend, "devices", _no_devices)
    settings = AppSettings(pbx_listen=f"127.0.0.1:{free_port()}")
    phone = build(settings, tmp_path / "pbx", tmp_path / "config", use_tray=False,
                  rtp_ports=rtp_block(), pbx_overrides={"qualify_interval": 0})  # fmt: skip
    try:
        qtbot.addWidget(phone.window)
        assert phone.window.last_notice == audio.NO_SOUND_CARD
        assert phone.runtime is not None and phone.runtime.phone.audio is None
        qtbot.waitUntil(
            lambda: phone.window.registration_label.text() == "Registered: extension 1000",
            timeout=10000,
        )
    finally:
        phone.shutdown()


def _no_devices(self) -> list:
    from app.audio import NO_SOUND_CARD

    self.problem = NO_SOUND_CARD
    return []


def test_external_pbx_account(qtbot, tmp_path: Path, memory_keyring):
    """Account type 'another PBX': no PBX inside; the UA registers as 1001 to a PBX
    elsewhere (here the integration harness's) and calls 1002 there."""
    from app.secrets import ACCOUNT_SECRET, SecretStore
    from tests.integration.pbx_harness import PASSWORDS, start_pbx

    other = start_pbx(tmp_path / "other")
    callee = Callee(other.port)
    SecretStore(None).set(ACCOUNT_SECRET, PASSWORDS["1001"])
    settings = AppSettings(account_mode="external", server="127.0.0.1", port=other.port,
                           username="1001", display_name="Alice")  # fmt: skip
    phone = build(settings, tmp_path / "mine", tmp_path / "config", use_tray=False,
                  audio=MemoryDevice(8000))  # fmt: skip
    try:
        qtbot.addWidget(phone.window)
        assert phone.runtime is not None and phone.runtime.pbx is None
        qtbot.waitUntil(
            lambda: phone.window.registration_label.text() == "Registered: 1001@127.0.0.1",
            timeout=10000,
        )
        phone.window.dial("1002")
        qtbot.waitUntil(lambda: panel_state(phone) is CallState.CONNECTED, timeout=10000)
        phone.window.hangup_current()
        qtbot.waitUntil(lambda: phone.window.panel.view is None, timeout=10000)
        cdr = other.wait_cdrs(1)[0]
        assert (cdr.caller, cdr.callee, cdr.disposition) == ("1001", "1002", Disposition.ANSWERED)
    finally:
        phone.shutdown()
        callee.close()
        other.stop()


def test_deskphone_process_starts_registers_and_stops_cleanly_on_sigterm(tmp_path: Path):
    import os
    import signal
    import subprocess
    import sys
    import threading

    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.main", "--data-dir", str(tmp_path / "pbx"),
         "--config-dir", str(tmp_path / "config"), "--listen", f"127.0.0.1:{free_port()}",
         "--report-shown", "tel:+15551234"],
        cwd=repo, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    lines: list[str] = []
    watchdog = threading.Timer(30, proc.kill)  # bounds the read loop below
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "deskphone: call +15551234 ended" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "deskphone: window shown" in output
    assert "signal received: quitting" in output
    assert "DeskPBX stopped" in output
    assert "deskphone: registered" in output
    # the tel: link was dialled once registered; the PBX has no such number
    assert "deskphone: call +15551234 dialing" in output
    assert "deskphone: call +15551234 ended 404 Not Found" in output


def test_a_taken_sip_port_is_explained(qtbot, tmp_path: Path) -> None:
    import socket

    from app.main import start_error
    from pbx.net.transport import ListenError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        settings = AppSettings(pbx_listen=f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(ListenError) as failure:
            build(settings, tmp_path / "pbx", tmp_path / "config", use_tray=False,
                  rtp_ports=rtp_block(), audio=MemoryDevice())  # fmt: skip
    text = start_error(failure.value, settings)
    assert text.startswith("The PBX inside DeskPhone cannot listen on UDP 127.0.0.1:")
    assert "address already in use" in text
    assert text.endswith(f"--listen HOST:PORT (now {settings.pbx_listen}).")
