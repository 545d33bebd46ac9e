"""`deskphone`: the desktop softphone with the PBX inside (the app's composition root).

    deskphone                      start (the PBX too, unless the account is external)
    deskphone sip:1002             start and call extension 1002 (a sip: link)
    deskphone tel:+15551234        start and call a number (a tel: link)

Options: --data-dir (the PBX's database, as `deskpbx --data-dir`),
--config-dir (the phone's settings file), --listen HOST:PORT (the embedded
PBX's SIP address for this run).

Start-up shows the window first and only then imports and starts the PBX
and the user agent (one event-loop turn later), so the window appears in
about the time Qt needs; the status bar says "Starting…" until then.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.bridge import Bridge
from app.qt import QApplication, QIcon, QMessageBox, QSocketNotifier, QTimer
from app.settings import AppSettings, load_settings
from app.window import MainWindow
from pbx.tuning import lean_log_records

if TYPE_CHECKING:
    from app.dialogs.settings import SettingsDialog
    from app.runtime import Runtime

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
ICON = RESOURCES / "icons" / "deskphone.svg"


def dial_target(argument: str | None) -> str | None:
    """A sip:/sips:/tel: link, or a bare number, as what the UA dials (None: nothing)."""
    if not argument:
        return None
    text = argument.strip()
    lowered = text.lower()
    if lowered.startswith("tel:"):
        return text[4:].split(";", 1)[0] or None
    if lowered.startswith(("sip:", "sips:")):
        return text
    return text or None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deskphone", description="DeskPBX desktop softphone")
    parser.add_argument("target", nargs="?", help="sip: or tel: link, or a number, to call")
    parser.add_argument("--data-dir", type=Path, help="the PBX's data directory")
    parser.add_argument("--config-dir", type=Path, help="the phone's settings directory")
    parser.add_argument("--listen", help="embedded PBX SIP address for this run, HOST:PORT")
    parser.add_argument("--report-shown", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


@dataclass
class DeskPhone:
    """Everything the app built, for Settings, Quit and tests."""

    app: QApplication
    window: MainWindow
    bridge: Bridge
    settings: AppSettings
    data_dir: Path
    config_dir: Path
    runtime: Runtime | None = None
    quitting: bool = False
    _secrets_store: Any = None
    keep_alive: list[Any] = field(default_factory=list)

    def start(self, target: str | None = None, **runtime_options: Any) -> None:
        """Start the PBX and the UA (imports them now) and attach them to the window."""
        from app.runtime import start_runtime
        from app.services import PbxDesk, pbx_status

        if "audio" not in runtime_options:
            runtime_options["audio"] = self._sound_card()
        runtime, ua = start_runtime(
            self.settings, self.data_dir, self.bridge.publish, **runtime_options
        )
        self.runtime = runtime
        self.bridge.loop = runtime.loop
        desk = PbxDesk(runtime.store, self.settings.extension) if runtime.store else None
        pbx = runtime.pbx
        status_fn = (lambda: pbx_status(pbx)) if pbx is not None else None
        self.window.attach(runtime.phone, desk, status_fn)

        def booted(_: object) -> None:
            if target:
                self.window.dial(target)

        self.bridge.submit(runtime.boot, ua, on_done=booted, what="Starting the phone")

    def take_link(self, link: str) -> None:
        """A link from a later `deskphone sip:...` launch: show the window and dial it."""
        self.window.show_normal()
        target = dial_target(link)
        if target:
            self.window.dial(target)

    def _sound_card(self) -> Any:
        """The sound card device, or None (said in the status bar) when there is none."""
        from app.audio import Ringer, SoundCardDevice, SoundDeviceBackend

        backend = SoundDeviceBackend()
        if not backend.devices():
            self.window.show_notice(backend.problem)
            return None
        self.window.ringer = Ringer(self.settings.ring_device)
        return SoundCardDevice(self.settings.input_device, self.settings.output_device)

    def open_settings(self) -> SettingsDialog | None:
        from app.audio import SoundDeviceBackend
        from app.dialogs.settings import SettingsDialog
        from app.secrets import SecretStore
        from pbx.store import Store

        runtime = self.runtime
        store = runtime.store if runtime is not None else None
        if self._secrets_store is None:  # external PBX: the PBX store only keeps secrets
            self._secrets_store = store or Store.in_dir(self.data_dir)
        dialog = SettingsDialog(
            self.settings, self.config_dir, store=store,
            secrets=SecretStore(self._secrets_store),
            audio=SoundDeviceBackend(rescan=self.window.calls.rowCount() == 0),
            server=runtime.server_text if runtime else "",
            submit=self.bridge.submit, parent=self.window,
        )  # fmt: skip
        dialog.accepted.connect(lambda: self.settings_saved(dialog.settings))
        dialog.open()
        return dialog

    def settings_saved(self, settings: AppSettings) -> None:
        """Audio devices change at once, even during a call; the account at the next start."""
        old, self.settings = self.settings, settings
        ringer = self.window.ringer
        if ringer is not None and hasattr(ringer, "device"):
            ringer.device = settings.ring_device or None
        devices = (settings.input_device, settings.output_device)
        audio = self.runtime.phone.audio if self.runtime is not None else None
        changed = devices != (old.input_device, old.output_device)
        if changed and audio is not None and hasattr(audio, "switch"):
            self.bridge.submit(audio.switch, *devices, what="Switching the sound device")

    def shutdown(self) -> None:
        """End calls cleanly (CDRs written), stop the PBX; idempotent."""
        if self.quitting:
            return
        self.quitting = True
        self.window.detach()
        if self.runtime is not None:
            if self._secrets_store is not None and self._secrets_store is not self.runtime.store:
                self._secrets_store.close()
            self.runtime.stop()

    def quit(self) -> None:
        self.window.hide()
        self.shutdown()
        self.app.quit()


def make(
    settings: AppSettings, data_dir: Path, config_dir: Path, *, use_tray: bool = True
) -> DeskPhone:
    """The window and the bridge, nothing started yet (QApplication must exist)."""
    app = QApplication.instance()
    assert isinstance(app, QApplication), "create the QApplication first"
    icon = QIcon(str(ICON)) if ICON.exists() else QIcon()
    app.setWindowIcon(icon)
    bridge = Bridge()
    window = MainWindow(bridge, icon=icon, use_tray=use_tray)
    phone = DeskPhone(app, window, bridge, settings, data_dir, config_dir)
    window.settings_requested.connect(phone.open_settings)
    window.quit_requested.connect(phone.quit)
    app.aboutToQuit.connect(phone.shutdown)
    app.setQuitOnLastWindowClosed(window.tray is None)
    return phone


def build(
    settings: AppSettings,
    data_dir: Path,
    config_dir: Path,
    *,
    target: str | None = None,
    use_tray: bool = True,
    **runtime_options: Any,
) -> DeskPhone:
    """make() and start() at once (tests, screenshots)."""
    phone = make(settings, data_dir, config_dir, use_tray=use_tray)
    phone.start(target, **runtime_options)
    return phone


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    lean_log_records()
    args = parse_args(argv)
    from platformdirs import user_config_dir, user_data_dir

    data_dir = args.data_dir or Path(user_data_dir("deskpbx", appauthor=False))
    config_dir = args.config_dir or Path(user_config_dir("deskphone", appauthor=False))
    settings = load_settings(config_dir)
    if args.listen:
        settings = settings.with_changes(pbx_listen=args.listen)
    app = QApplication(sys.argv[:1])
    app.setApplicationName("DeskPhone")
    app.setDesktopFileName("deskphone")
    from app.single import InstanceServer, instance_name, send_to_running

    name = instance_name(config_dir)
    if send_to_running(name, args.target or ""):
        return 0  # the running DeskPhone dials it
    phone = make(settings, data_dir, config_dir)
    instances = InstanceServer(name, phone.window)
    instances.target_received.connect(phone.take_link)
    phone.window.show()
    if args.report_shown:  # the launch benchmark (tests/bench/bench_gui.py) reads these lines
        QTimer.singleShot(0, lambda: print("deskphone: window shown", flush=True))
        phone.bridge.phone_event.connect(_report)

    def start() -> None:
        try:
            phone.start(dial_target(args.target))
        except Exception as exc:  # the PBX port is taken, the data dir unusable...
            log.exception("cannot start")
            QMessageBox.critical(phone.window, "DeskPhone cannot start", start_error(exc, settings))
            app.exit(1)

    QTimer.singleShot(0, start)
    _quit_on_signals(phone)
    return app.exec()


def start_error(exc: BaseException, settings: AppSettings) -> str:
    """What to tell the user when the PBX or the phone cannot start."""
    from pbx.net.transport import ListenError

    if isinstance(exc, ListenError):
        return (
            f"The PBX inside DeskPhone {exc}. Stop the other one, or start DeskPhone "
            f"with --listen HOST:PORT (now {settings.pbx_listen})."
        )
    return str(exc)


def _quit_on_signals(phone: DeskPhone) -> None:
    """SIGTERM/SIGINT (logout, systemd, Ctrl+C) quit cleanly: calls ended, CDRs written.

    Python runs signal handlers only between bytecodes, never while Qt's event
    loop waits; the wake-up fd makes the signal readable by a QSocketNotifier
    instead, with no polling timer (idle CPU stays at zero).
    """
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)  # the notifier below does the work
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, phone.window)

    def woken() -> None:
        try:
            reader.recv(64)
        except OSError:
            return
        log.info("signal received: quitting")
        phone.quit()

    notifier.activated.connect(woken)
    phone.keep_alive.extend((reader, writer, notifier))


def _report(event: object) -> None:
    """--report-shown: registration and call states on stdout (benchmark, process tests)."""
    from app.phone import CallUpdated, RegistrationState, RegistrationUpdated

    if isinstance(event, RegistrationUpdated) and event.state is RegistrationState.REGISTERED:
        print("deskphone: registered", flush=True)
    elif isinstance(event, CallUpdated):
        view = event.view
        print(f"deskphone: call {view.remote} {view.state.value} {view.reason}".rstrip(),
              flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
