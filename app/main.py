"""`deskphone`: the desktop softphone with the PBX inside (the app's composition root).

    deskphone                      start (the PBX too, unless the account is external)
    deskphone sip:1002             start and call extension 1002 (a sip: link)
    deskphone tel:+15551234        start and call a number (a tel: link)

Options: --data-dir (the PBX's database, as `deskpbx --data-dir`),
--config-dir (the phone's settings file), --listen HOST:PORT (the embedded
PBX's SIP address for this run).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from app.audio import SoundDeviceBackend
from app.bridge import Bridge
from app.dialogs.settings import SettingsDialog
from app.qt import QApplication, QIcon, QMessageBox
from app.runtime import Runtime, start_runtime
from app.secrets import SecretStore
from app.services import PbxDesk, pbx_status
from app.settings import AppSettings, load_settings
from app.window import MainWindow

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
    return parser.parse_args(argv)


@dataclass
class DeskPhone:
    """Everything main() built, for Quit and for tests."""

    app: QApplication
    window: MainWindow
    bridge: Bridge
    runtime: Runtime
    config_dir: Path

    def open_settings(self) -> SettingsDialog:
        store = self.runtime.store
        dialog = SettingsDialog(
            self.runtime.settings, self.config_dir, store=store, secrets=SecretStore(store),
            audio=SoundDeviceBackend(), server=self.runtime.server_text,
            submit=self.bridge.submit, parent=self.window,
        )  # fmt: skip
        dialog.open()
        return dialog

    def shutdown(self) -> None:
        """End calls cleanly (CDRs written), stop the PBX; idempotent."""
        if self.runtime.stopped:
            return
        self.window.detach()
        self.runtime.stop()

    def quit(self) -> None:
        self.window.hide()
        self.shutdown()
        self.app.quit()


def build(
    settings: AppSettings,
    data_dir: Path,
    config_dir: Path,
    *,
    target: str | None = None,
    use_tray: bool = True,
    **runtime_options: object,
) -> DeskPhone:
    """Start the runtime and the window (QApplication must exist)."""
    app = QApplication.instance()
    assert isinstance(app, QApplication), "create the QApplication first"
    icon = QIcon(str(ICON)) if ICON.exists() else QIcon()
    app.setWindowIcon(icon)
    bridge = Bridge()
    runtime, ua = start_runtime(
        settings,
        data_dir,
        bridge.publish,
        **runtime_options,  # type: ignore[arg-type]
    )
    bridge.loop = runtime.loop
    desk = PbxDesk(runtime.store, settings.extension) if runtime.store is not None else None
    status_fn = (lambda: pbx_status(runtime.pbx)) if runtime.pbx is not None else None
    window = MainWindow(bridge, runtime.phone, desk, status_fn=status_fn, icon=icon,
                        use_tray=use_tray)  # fmt: skip
    phone = DeskPhone(app, window, bridge, runtime, config_dir)
    window.settings_requested.connect(phone.open_settings)
    window.quit_requested.connect(phone.quit)
    app.aboutToQuit.connect(phone.shutdown)
    app.setQuitOnLastWindowClosed(window.tray is None)

    def booted(_: object) -> None:
        if target:
            window.dial(target)

    bridge.submit(runtime.boot, ua, on_done=booted, what="Starting the phone")
    return phone


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
    try:
        phone = build(settings, data_dir, config_dir, target=dial_target(args.target))
    except Exception as exc:
        QMessageBox.critical(None, "DeskPhone cannot start", str(exc))
        return 1
    phone.window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
