"""The settings dialog: account, audio, extensions, trunks and routes pages.

Account and audio changes are saved to the settings file and take effect
at the next start of the phone; extension and trunk changes go straight
into the PBX's store, which the running PBX reads on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.audio import AudioBackend
from app.dialogs.extensions import ExtensionsPage
from app.dialogs.routes import RoutesPage
from app.dialogs.trunks import TrunksPage
from app.qt import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from app.secrets import SecretStore
from app.settings import EMBEDDED, EXTERNAL, AppSettings, save_settings
from pbx.store import Store

ACCOUNT_SECRET = "account-password"
DEFAULT_DEVICE = "System default"


class AccountPage(QWidget):
    def __init__(self, settings: AppSettings, secrets: SecretStore, parent: QWidget) -> None:
        super().__init__(parent)
        self.secrets = secrets
        self.mode = QComboBox(self)
        self.mode.addItem("The PBX in this app", EMBEDDED)
        self.mode.addItem("Another PBX or provider", EXTERNAL)
        self.mode.setAccessibleName("Account type")
        self.mode.setCurrentIndex(0 if settings.embedded else 1)
        self.server = self._edit(settings.server, "SIP server")
        self.port = QSpinBox(self)
        self.port.setRange(1, 65535)
        self.port.setValue(settings.port)
        self.port.setAccessibleName("SIP port")
        self.username = self._edit(settings.username, "User name")
        self.password = self._edit("", "Password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("unchanged")
        self.display_name = self._edit(settings.display_name, "Display name")
        self.where = QLabel("", self)
        self.where.setWordWrap(True)
        self.where.setAccessibleName("Where the password is kept")
        form = QFormLayout(self)
        for label, widget in (("Account", self.mode), ("Server", self.server),
                              ("Port", self.port), ("User name", self.username),
                              ("Password", self.password), ("Display name", self.display_name),
                              ("", self.where)):  # fmt: skip
            form.addRow(label, widget)
        self.mode.currentIndexChanged.connect(self._follow_mode)
        self._follow_mode()

    def _edit(self, text: str, name: str) -> QLineEdit:
        edit = QLineEdit(text, self)
        edit.setAccessibleName(name)
        return edit

    def _follow_mode(self) -> None:
        external = self.mode.currentData() == EXTERNAL
        for widget in (self.server, self.port, self.username, self.password):
            widget.setEnabled(external)

    def apply(self, settings: AppSettings) -> AppSettings:
        if self.password.text():
            where = self.secrets.set(ACCOUNT_SECRET, self.password.text())
            self.where.setText(f"The password is kept in {where}.")
            self.password.clear()
        return settings.with_changes(
            account_mode=self.mode.currentData(),
            server=self.server.text().strip(),
            port=self.port.value(),
            username=self.username.text().strip(),
            display_name=self.display_name.text().strip(),
        )


class AudioPage(QWidget):
    def __init__(self, settings: AppSettings, backend: AudioBackend, parent: QWidget) -> None:
        super().__init__(parent)
        devices = backend.devices()
        self.problem = QLabel(backend.problem, self)
        self.problem.setWordWrap(True)
        self.problem.setAccessibleName("Audio problem")
        inputs = [d.name for d in devices if d.inputs > 0]
        outputs = [d.name for d in devices if d.outputs > 0]
        self.input = self._combo(inputs, settings.input_device, "Microphone")
        self.output = self._combo(outputs, settings.output_device, "Speaker")
        self.ring = self._combo(outputs, settings.ring_device, "Ringing device")
        form = QFormLayout(self)
        form.addRow(self.problem)
        form.addRow("Microphone", self.input)
        form.addRow("Speaker", self.output)
        form.addRow("Ring on", self.ring)

    def _combo(self, names: list[str], chosen: str, accessible: str) -> QComboBox:
        combo = QComboBox(self)
        combo.setAccessibleName(accessible)
        combo.addItem(DEFAULT_DEVICE, "")
        for name in names:
            combo.addItem(name, name)
        if chosen and chosen not in names:
            combo.addItem(f"{chosen} (not connected)", chosen)
        combo.setCurrentIndex(max(0, combo.findData(chosen)))
        return combo

    def apply(self, settings: AppSettings) -> AppSettings:
        return settings.with_changes(
            input_device=self.input.currentData(),
            output_device=self.output.currentData(),
            ring_device=self.ring.currentData(),
        )


class SettingsDialog(QDialog):
    """Opened by Ctrl+, ; `saved(settings)` is called with the new app settings on OK."""

    def __init__(
        self,
        settings: AppSettings,
        config_dir: Path,
        *,
        store: Store | None,
        secrets: SecretStore,
        audio: AudioBackend,
        server: str = "",
        submit: Callable[..., Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.config_dir = config_dir
        self.tabs = QTabWidget(self)
        self.account = AccountPage(settings, secrets, self)
        self.audio = AudioPage(settings, audio, self)
        self.tabs.addTab(self.account, "Account")
        self.tabs.addTab(self.audio, "Audio")
        self.extensions: ExtensionsPage | None = None
        self.trunks: TrunksPage | None = None
        self.routes: RoutesPage | None = None
        if store is not None:
            self.extensions = ExtensionsPage(store, server, self)
            self.trunks = TrunksPage(store, submit, self)
            self.routes = RoutesPage(store, self)
            self.tabs.addTab(self.extensions, "Extensions")
            self.tabs.addTab(self.trunks, "Trunks")
            self.tabs.addTab(self.routes, "Routes")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)

    def accept(self) -> None:
        self.settings = self.audio.apply(self.account.apply(self.settings))
        save_settings(self.config_dir, self.settings)
        super().accept()
