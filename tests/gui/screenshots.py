"""Screenshots of the main window for docs/: idle, during a call, and the history.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.gui.screenshots docs

Runs the real app (embedded PBX on 127.0.0.1, a free port) with a headless
UA as extension 1002 that answers, and saves QWidget.grab() images.

With --xvfb the pictures are what an X server displays instead of what Qt
renders into a pixmap: the window is shown by the xcb platform plugin on the
display in $DISPLAY (an Xvfb without a window manager), the root window is
dumped with `xwd -root` and ImageMagick's `convert` crops it to the window:

    Xvfb :99 -screen 0 1024x768x24 -nolisten tcp &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb .venv/bin/python -m tests.gui.screenshots --xvfb docs
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

XVFB_FLAG = "--xvfb"
if XVFB_FLAG in sys.argv[1:]:
    os.environ["QT_QPA_PLATFORM"] = "xcb"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def wait(app, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def settle(app, seconds: float = 0.5) -> None:
    """Lets Qt paint and flush to the X server before the screen is read.

    Without a window manager nothing tells us the frame is on screen, so the
    event loop runs a bounded moment after a repaint (never in unit tests).
    """
    deadline = time.monotonic() + seconds
    wait(app, lambda: time.monotonic() > deadline, timeout=seconds + 5.0)


def grab_widget(app, window, path: Path) -> None:
    """What Qt paints for the window (offscreen or any platform)."""
    window.grab().save(str(path))


def grab_screen(app, window, path: Path) -> None:
    """What X displays: the root window cropped to the window's rectangle.

    Needs `xwd` (x11-apps) and ImageMagick's `convert`; the window has no
    frame, as there is no window manager on the Xvfb display.
    """
    window.raise_()
    window.activateWindow()
    window.repaint()
    settle(app)
    rect = window.frameGeometry()
    crop = f"{rect.width()}x{rect.height()}+{rect.x()}+{rect.y()}"
    dump = subprocess.run(["xwd", "-root", "-silent"], capture_output=True, check=True,
                          timeout=30).stdout  # fmt: skip
    subprocess.run(["convert", "xwd:-", "-crop", crop, "+repage", "-strip", f"png:{path}"],
                   input=dump, check=True, timeout=30)  # fmt: skip
    check_picture(path, rect.width(), rect.height())


def check_picture(path: Path, width: int, height: int) -> None:
    """Refuses a crop that missed the window: wrong size or a single flat colour.

    A window off the screen crops short; one X has not painted yet is the
    root's plain background.
    """
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    if (image.width(), image.height()) != (width, height):
        raise RuntimeError(f"{path}: {image.width()}x{image.height()}, not {width}x{height}")
    step = max(1, min(width, height) // 20)
    colours = {image.pixel(x, y) for x in range(0, width, step) for y in range(0, height, step)}
    if len(colours) < 3:
        raise RuntimeError(f"{path}: {len(colours)} colours; the window was not on the screen")


def xvfb_ready() -> str | None:
    """Why --xvfb cannot run here, or None when it can."""
    if not os.environ.get("DISPLAY"):
        return "--xvfb needs DISPLAY set to the Xvfb display (e.g. DISPLAY=:99)"
    missing = [tool for tool in ("xwd", "convert") if shutil.which(tool) is None]
    if missing:
        return f"--xvfb needs {' and '.join(missing)}: apt-get install x11-apps imagemagick"
    return None


def main(argv: list[str]) -> int:
    from app.audio import MemoryDevice
    from app.main import build
    from app.phone import CallState
    from app.qt import QApplication
    from app.settings import AppSettings
    from pbx.store import Store
    from tests.gui.test_e2e import CALLEE_PASSWORD, Callee
    from tests.integration.pbx_harness import rtp_block
    from tests.integration.ports import free_port

    xvfb = XVFB_FLAG in argv
    args = [arg for arg in argv if arg != XVFB_FLAG]
    if xvfb and (problem := xvfb_ready()):
        print(problem, file=sys.stderr)
        return 2
    shoot = grab_screen if xvfb else grab_widget
    out = Path(args[0] if args else "docs")
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "pbx"
        data_dir.mkdir()
        with Store.in_dir(data_dir) as store:
            store.add_extension("1002", CALLEE_PASSWORD, "Kitchen")
            store.add_extension("1003", "secret-1003", "Front desk")
        settings = AppSettings(pbx_listen=f"127.0.0.1:{free_port()}")
        phone = build(settings, data_dir, Path(tmp) / "config", use_tray=False,
                      rtp_ports=rtp_block(), audio=MemoryDevice(48000),
                      pbx_overrides={"qualify_interval": 0})  # fmt: skip
        window = phone.window
        window.resize(380, 560)
        window.move(0, 0)
        window.show()
        callee = Callee(phone.runtime.pbx.sip_port())
        try:
            wait(app, lambda: window.registration_label.text().startswith("Registered"))
            window.refresh()
            wait(app, lambda: "phones" in window.pbx_label.text())
            shoot(app, window, out / "deskphone-idle.png")
            window.dialpad.set_number("1002")
            window.dialpad.request_dial()
            view = lambda: window.panel.view  # noqa: E731
            wait(app, lambda: view() is not None and view().state is CallState.CONNECTED)
            deadline = time.monotonic() + 3.2
            wait(app, lambda: time.monotonic() > deadline)
            window.refresh()
            wait(app, lambda: "1 call" in window.pbx_label.text())
            shoot(app, window, out / "deskphone-call.png")
            window.hangup_current()
            wait(app, lambda: window.panel.view is None)
            wait(app, lambda: window.pbx_label.text().endswith("0 calls"))

            def history_shown() -> bool:
                window.refresh_history()
                return window.history.rowCount() > 0

            wait(app, history_shown)
            window.tabs.setCurrentIndex(1)
            window.history_view.selectRow(0)
            window.history_view.resizeColumnsToContents()
            app.processEvents()
            shoot(app, window, out / "deskphone-history.png")
        finally:
            callee.close()
            phone.shutdown()
    print(f"saved deskphone-idle.png, deskphone-call.png and deskphone-history.png in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
