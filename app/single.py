"""One DeskPhone per user: a second `deskphone sip:1002` hands its link to the first.

The .desktop file makes DeskPhone the handler of sip:, sips: and tel:
links, so clicking one while the app runs starts a second process. That
process connects to the first one's QLocalServer, sends the link (one line,
empty to just raise the window) and exits; the first one dials it.
"""

from __future__ import annotations

import getpass
import hashlib
from pathlib import Path

from PySide6.QtNetwork import QLocalServer, QLocalSocket

from app.qt import QObject, Signal, Slot

CONNECT_MS = 500


def instance_name(config_dir: Path) -> str:
    """Per user and per settings directory (tests and portable installs do not collide)."""
    digest = hashlib.sha256(str(config_dir.resolve()).encode()).hexdigest()[:12]
    return f"deskphone-{getpass.getuser()}-{digest}"


def send_to_running(name: str, target: str) -> bool:
    """True when a running DeskPhone took `target`; False when there is none."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(CONNECT_MS):
        return False
    socket.write((target.replace("\n", " ") + "\n").encode())
    socket.waitForBytesWritten(CONNECT_MS)
    socket.disconnectFromServer()
    return True


class InstanceServer(QObject):
    """Listens for later launches; `target_received(link)` on the GUI thread."""

    target_received = Signal(str)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        QLocalServer.removeServer(name)  # a stale socket file left by a crash
        self.listening = self.server.listen(name)
        self.server.newConnection.connect(self._accept)

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.readyRead.connect(self._ready)
            if socket.canReadLine():
                self._read(socket)

    @Slot()
    def _ready(self) -> None:
        socket = self.sender()
        if isinstance(socket, QLocalSocket):
            self._read(socket)

    def _read(self, socket: QLocalSocket) -> None:
        while socket.canReadLine():
            line = bytes(socket.readLine().data()).decode("utf-8", "replace").strip()
            self.target_received.emit(line)

    def close(self) -> None:
        self.server.close()
