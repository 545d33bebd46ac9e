"""The settings dialog: account, audio, extensions, trunks and routes pages.

Account and audio changes are saved to the settings file and take effect
at the next start of the phone; extension and trunk changes go straight
into the PBX's store, which the running PBX reads on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.audio import AudioBackend, MicMeter, play_test_tone
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
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QTimer,
    QVBoxLayout,
    QWidget,
)
from app.secrets import ACCOUNT_SECRET, SecretStore
from app.settings import EMBEDDED, EXTERNAL, AppSettings, save_settings
from pbx.store import Store

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
        self.where = QLabel("Account changes take effect when DeskPhone next starts.", self)
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
            self.where.setText(f"The password is kept in {where}. Account changes take "
                               "effect when DeskPhone next starts.")  # fmt: skip
            self.password.clear()
        return settings.with_changes(
            account_mode=self.mode.currentData(),
            server=self.server.text().strip(),
            port=self.port.value(),
            username=self.username.text().strip(),
            display_name=self.display_name.text().strip(),
        )


class AudioPage(QWidget):
    """Devices, a test tone and a microphone meter (the meter runs while the page shows)."""

    def __init__(
        self,
        settings: AppSettings,
        backend: AudioBackend,
        parent: QWidget,
        *,
        sound: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(parent)
        self.sound = sound
        devices = backend.devices()
        self.problem = QLabel(backend.problem, self)
        self.problem.setWordWrap(True)
        self.problem.setAccessibleName("Audio problem")
        inputs = [d.name for d in devices if d.inputs > 0]
        outputs = [d.name for d in devices if d.outputs > 0]
        self.input = self._combo(inputs, settings.input_device, "Microphone")
        self.output = self._combo(outputs, settings.output_device, "Speaker")
        self.ring = self._combo(outputs, settings.ring_device, "Ringing device")
        self.test_tone = QPushButton("Play test tone", self)
        self.test_tone.setAccessibleName("Play a test tone on the speaker")
        self.test_tone.clicked.connect(self.play_tone)
        self.meter = QProgressBar(self)
        self.meter.setRange(-60, 0)
        self.meter.setValue(-60)
        self.meter.setTextVisible(False)
        self.meter.setAccessibleName("Microphone level")
        self.tone_result = QLabel("", self)
        self.tone_result.setAccessibleName("Test tone result")
        self.mic_meter: MicMeter | None = None
        self._meter_timer = QTimer(self)
        self._meter_timer.setInterval(100)
        self._meter_timer.timeout.connect(self._show_level)
        has_card = bool(devices)
        self.test_tone.setEnabled(has_card)
        self.meter.setEnabled(has_card)
        form = QFormLayout(self)
        form.addRow(self.problem)
        form.addRow("Microphone", self.input)
        form.addRow("Level", self.meter)
        form.addRow("Speaker", self.output)
        form.addRow("", self.test_tone)
        form.addRow("", self.tone_result)
        form.addRow("Ring on", self.ring)
        if has_card:
            self.input.currentIndexChanged.connect(self._restart_meter)

    def play_tone(self) -> None:
        kwargs = {"backend": self.sound} if self.sound is not None else {}
        self.tone_result.setText(play_test_tone(self.output.currentData(), **kwargs))

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if self.meter.isEnabled():
            self._restart_meter()

    def hideEvent(self, event: Any) -> None:
        super().hideEvent(event)
        self.stop_meter()

    def _restart_meter(self) -> None:
        if self.mic_meter is None:
            kwargs = {"backend": self.sound} if self.sound is not None else {}
            self.mic_meter = MicMeter(**kwargs)
        if self.mic_meter.start(self.input.currentData()):
            self._meter_timer.start()
        else:
            self.tone_result.setText(self.mic_meter.problem)

    def stop_meter(self) -> None:
        self._meter_timer.stop()
        if self.mic_meter is not None:
            self.mic_meter.stop()

    def _show_level(self) -> None:
        if self.mic_meter is not None:
            self.meter.setValue(round(max(-60.0, self.mic_meter.level)))

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
        sound: Callable[[], Any] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.config_dir = config_dir
        self.tabs = QTabWidget(self)
        self.account = AccountPage(settings, secrets, self)
        self.audio = AudioPage(settings, audio, self, sound=sound)
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

    def done(self, result: int) -> None:
        self.audio.stop_meter()
        super().done(result)

    def accept(self) -> None:
        self.settings = self.audio.apply(self.account.apply(self.settings))
        save_settings(self.config_dir, self.settings)
        super().accept()
