"""Screenshots of the main window for docs/: idle, during a call, and the history.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m tests.gui.screenshots docs

Runs the real app (embedded PBX on 127.0.0.1, a free port) with a headless
UA as extension 1002 that answers, and saves QWidget.grab() images.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def wait(app, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


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

    out = Path(argv[0] if argv else "docs")
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
        window.show()
        callee = Callee(phone.runtime.pbx.sip_port())
        try:
            wait(app, lambda: window.registration_label.text().startswith("Registered"))
            window.refresh()
            wait(app, lambda: "phones" in window.pbx_label.text())
            window.grab().save(str(out / "deskphone-idle.png"))
            window.dialpad.set_number("1002")
            window.dialpad.request_dial()
            view = lambda: window.panel.view  # noqa: E731
            wait(app, lambda: view() is not None and view().state is CallState.CONNECTED)
            deadline = time.monotonic() + 3.2
            wait(app, lambda: time.monotonic() > deadline)
            window.refresh()
            wait(app, lambda: "1 call" in window.pbx_label.text())
            window.grab().save(str(out / "deskphone-call.png"))
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
            window.grab().save(str(out / "deskphone-history.png"))
        finally:
            callee.close()
            phone.shutdown()
    print(f"saved deskphone-idle.png, deskphone-call.png and deskphone-history.png in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
