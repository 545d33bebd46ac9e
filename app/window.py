"""The main window: dial pad, calls in progress, history, directory, status bar, tray.

The window turns user actions into `Phone` calls submitted through the
bridge, and applies the phone's events to its models; it never waits for
the PBX thread. Shortcuts: Enter dials, Esc hangs up (or rejects a ringing
call), Ctrl+, opens the settings. Closing the window keeps the app (and
the embedded PBX) running in the system tray when there is one; Quit emits
`quit_requested`, and app.main stops the calls and the PBX cleanly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from app.bridge import Bridge
from app.dialogs.incoming import IncomingCallDialog
from app.models import CallsModel, DirectoryModel, HistoryModel
from app.phone import (
    CallState,
    CallUpdated,
    CallView,
    Notice,
    PbxStatus,
    Phone,
    RegistrationState,
    RegistrationUpdated,
)
from app.qt import (
    QAction,
    QCloseEvent,
    QHBoxLayout,
    QIcon,
    QInputDialog,
    QKeyEvent,
    QKeySequence,
    QLabel,
    QListView,
    QMainWindow,
    QMenu,
    QPushButton,
    QShortcut,
    QSystemTrayIcon,
    Qt,
    QTableView,
    QTabWidget,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)
from app.widgets.call_panel import CallPanel
from app.widgets.dialpad import DialPad

if TYPE_CHECKING:
    from app.services import PbxDesk


class Ringing(Protocol):
    """app.audio.Ringer, or a test's fake."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


REGISTRATION_WORDS = {
    RegistrationState.STARTING: "Starting…",
    RegistrationState.UNREGISTERED: "Not registered",
    RegistrationState.REGISTERING: "Registering…",
    RegistrationState.REGISTERED: "Registered",
    RegistrationState.UNREGISTERING: "Signing off…",
    RegistrationState.FAILED: "Registration failed",
}
STYLE = """
QPushButton#callButton { background: #2da44e; color: white; font-weight: bold; padding: 8px; }
QPushButton#hangupButton { background: #cf222e; color: white; font-weight: bold; padding: 8px; }
QLabel#callTitle { font-size: 15pt; font-weight: bold; }
QLabel#callTimer { font-size: 13pt; color: #57606a; }
QLineEdit#number { font-size: 15pt; padding: 4px; }
"""
DIAL_KEYS = frozenset("0123456789*#+")
REFRESH_MS = 5000  # directory and PBX status; cheap store reads, idle CPU stays near zero


class MainWindow(QMainWindow):
    quit_requested = Signal()
    settings_requested = Signal()

    def __init__(
        self,
        bridge: Bridge,
        phone: Phone | None = None,
        desk: PbxDesk | None = None,
        *,
        status_fn: Callable[[], Any] | None = None,
        icon: QIcon | None = None,
        use_tray: bool = True,
        ringer: Ringing | None = None,
    ) -> None:
        super().__init__()
        self.bridge = bridge
        self.phone = phone
        self.desk = desk
        self.status_fn = status_fn
        self.ringer = ringer
        self.setWindowTitle("DeskPhone")
        if icon is not None:
            self.setWindowIcon(icon)
        self.calls = CallsModel(self)
        self.history = HistoryModel(self)
        self.directory = DirectoryModel(self)
        self.incoming: dict[str, IncomingCallDialog] = {}
        self.transfer_dialog: QInputDialog | None = None
        self.transfer_choices: dict[str, str] = {}
        self.last_notice = ""
        self._build_ui()
        self._build_menu_and_shortcuts()
        self.tray = self._build_tray(icon) if use_tray else None
        bridge.phone_event.connect(self.on_event)
        self._refresher = QTimer(self)
        self._refresher.setInterval(REFRESH_MS)
        self._refresher.timeout.connect(self.refresh)
        self.setStyleSheet(STYLE)
        if phone is not None:
            self.attach(phone, desk, status_fn)

    def attach(
        self, phone: Phone, desk: PbxDesk | None, status_fn: Callable[[], Any] | None
    ) -> None:
        """Connect the phone once it runs (the window is shown before the PBX starts)."""
        self.phone = phone
        self.desk = desk
        self.status_fn = status_fn
        if desk is not None or status_fn is not None:
            self._refresher.start()
        self.refresh()

    # ------------------------------------------------------------------ layout

    def _build_ui(self) -> None:
        self.dialpad = DialPad(self)
        self.dialpad.dial_requested.connect(self.dial)
        self.dialpad.key_pressed.connect(self._key_during_call)
        self.panel = CallPanel(self)
        self.panel.hide()
        self.panel.hangup_requested.connect(self.hangup)
        self.panel.hold_toggled.connect(self.set_hold)
        self.panel.mute_toggled.connect(self.set_mute)
        self.panel.dtmf_pressed.connect(self.send_dtmf)
        self.panel.transfer_requested.connect(self.ask_transfer_target)
        self.calls_view = QListView(self)
        self.calls_view.setModel(self.calls)
        self.calls_view.setAccessibleName("Calls in progress")
        self.calls_view.setMaximumHeight(80)
        self.calls_view.hide()
        self.calls_view.clicked.connect(lambda index: self.choose_call(index.row()))
        self.chosen_key: str | None = None
        phone_page = QWidget(self)
        column = QVBoxLayout(phone_page)
        column.addWidget(self.calls_view)
        column.addWidget(self.panel)
        column.addWidget(self.dialpad)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(phone_page, "Phone")
        self.tabs.addTab(self._history_page(), "History")
        self.tabs.addTab(self._directory_page(), "Directory")
        self.setCentralWidget(self.tabs)
        self.registration_label = QLabel(REGISTRATION_WORDS[RegistrationState.STARTING], self)
        self.registration_label.setAccessibleName("Softphone registration")
        self.pbx_label = QLabel("", self)
        self.pbx_label.setAccessibleName("PBX status")
        self.pbx_label.setToolTip("Phones registered to the PBX in this app, and calls through it")
        self.statusBar().addWidget(self.registration_label)
        self.statusBar().addPermanentWidget(self.pbx_label)

    def _table(self, model: Any, name: str, on_activate: Callable[[int], None]) -> QTableView:
        table = QTableView(self)
        table.setModel(model)
        table.setAccessibleName(name)
        table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        table.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        table.verticalHeader().hide()
        table.horizontalHeader().setStretchLastSection(True)
        table.activated.connect(lambda index: on_activate(index.row()))
        return table

    def _history_page(self) -> QWidget:
        page = QWidget(self)
        self.history_view = self._table(self.history, "Call history", self.redial)
        self.redial_button = QPushButton("Call back", page)
        self.redial_button.setAccessibleName("Call back")
        self.redial_button.clicked.connect(lambda: self.redial(self._selected(self.history_view)))
        layout = QVBoxLayout(page)
        layout.addWidget(self.history_view)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.redial_button)
        layout.addLayout(row)
        return page

    def _directory_page(self) -> QWidget:
        page = QWidget(self)
        self.directory_view = self._table(self.directory, "Extensions", self.call_extension)
        layout = QVBoxLayout(page)
        layout.addWidget(self.directory_view)
        return page

    def _build_menu_and_shortcuts(self) -> None:
        menu = self.menuBar().addMenu("&Phone")
        self.settings_action = QAction("&Settings…", self)
        self.settings_action.setShortcuts(
            [QKeySequence("Ctrl+,"), QKeySequence(QKeySequence.StandardKey.Preferences)]
        )
        self.settings_action.triggered.connect(self.settings_requested)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.quit_requested)
        menu.addAction(self.settings_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        self.addAction(self.settings_action)
        self.addAction(self.quit_action)
        QShortcut(QKeySequence("Escape"), self).activated.connect(self.hangup_current)
        for key in ("Return", "Enter"):
            QShortcut(QKeySequence(key), self).activated.connect(self.dialpad.request_dial)

    def _build_tray(self, icon: QIcon | None) -> QSystemTrayIcon | None:
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None
        tray = QSystemTrayIcon(icon or QIcon(), self)
        menu = QMenu(self)
        menu.addAction("Show DeskPhone", self.show_normal)
        menu.addAction(self.quit_action)
        tray.setContextMenu(menu)
        tray.activated.connect(lambda _reason: self.show_normal())
        tray.setToolTip("DeskPhone")
        tray.show()
        return tray

    # ------------------------------------------------------------------ actions

    def _submit(self, action: str, *args: Any, what: str) -> None:
        """Run phone.<action>(*args) on the PBX loop; before the phone runs, say so."""
        if self.phone is None or self.bridge.loop is None:
            self.show_notice(f"{what}: the phone is still starting")
            return
        self.bridge.submit(getattr(self.phone, action), *args, what=what)

    def dial(self, target: str) -> None:
        self._submit("dial", target, what=f"Calling {target}")
        self.dialpad.number.clear()

    def redial(self, row: int | None) -> None:
        if row is not None and 0 <= row < self.history.rowCount():
            self.dial(self.history.row(row).number)

    def call_extension(self, row: int | None) -> None:
        if row is not None and 0 <= row < self.directory.rowCount():
            self.dial(self.directory.row(row).number)

    def answer(self, key: str) -> None:
        self._submit("answer", key, what="Answering")

    def reject(self, key: str) -> None:
        self._submit("reject", key, what="Rejecting")

    def hangup(self, key: str) -> None:
        self._submit("hangup", key, what="Hanging up")

    def hangup_current(self) -> None:
        """Esc: reject the newest ringing call, else hang up the shown one."""
        ringing = [v for v in self.calls.calls() if v.ringing_in]
        if ringing:
            self.reject(ringing[-1].key)
        elif self.panel.view is not None:
            self.hangup(self.panel.view.key)

    def set_hold(self, key: str, on: bool) -> None:
        self._submit("hold" if on else "resume", key, what="Hold" if on else "Resume")

    def set_mute(self, key: str, on: bool) -> None:
        self._submit("set_muted", key, on, what="Mute")

    def send_dtmf(self, key: str, digit: str) -> None:
        self._submit("send_dtmf", key, digit, what="Sending a tone")

    def _key_during_call(self, digit: str) -> None:
        view = self.panel.view
        if view is not None and view.state is CallState.CONNECTED:
            self.send_dtmf(view.key, digit)

    def ask_transfer_target(self, key: str) -> None:
        """Blind transfer to a typed number, or attended transfer to another call of ours
        (its far end replaces us in both calls: REFER with Replaces, RFC 5589 7)."""
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Transfer")
        dialog.setLabelText("Transfer the call to (extension or number):")
        self.transfer_choices = {
            f"{v.display_name or v.remote} (the other call)": v.key
            for v in self.calls.calls()
            if v.key != key and v.live and not v.ringing_in
        }
        if self.transfer_choices:
            dialog.setComboBoxItems(list(self.transfer_choices))
            dialog.setComboBoxEditable(True)
        dialog.textValueSelected.connect(lambda target: self.transfer(key, target))
        self.transfer_dialog = dialog
        dialog.open()

    def transfer(self, key: str, target: str) -> None:
        other = self.transfer_choices.get(target)
        if other is not None:
            self._submit("attended_transfer", key, other, what="Transfer")
        elif target.strip():
            self._submit("transfer", key, target.strip(), what="Transfer")

    def _selected(self, table: QTableView) -> int | None:
        rows = table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def show_normal(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()

    # ------------------------------------------------------------------ events

    def on_event(self, event: object) -> None:
        handler = self._HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _on_call(self, event: CallUpdated) -> None:
        view = event.view
        if self.calls.row_of(view.key) is None and not view.ringing_in:
            self.chosen_key = None  # a new call of ours gets the panel
        self.calls.apply(view)
        if view.ringing_in and view.key not in self.incoming:
            self._open_incoming(view)
        elif not view.ringing_in and view.key in self.incoming:
            self.incoming.pop(view.key).close()
        if self.ringer is not None and self.incoming:
            self.ringer.start()
        elif self.ringer is not None:
            self.ringer.stop()
        if not view.live or view.state is CallState.CONNECTED:
            self.refresh()  # history, directory and the PBX's call count change now
        if not view.live:
            if view.reason:
                self.show_notice(f"Call with {view.remote} ended: {view.reason}")
        self._show_panel()

    def choose_call(self, row: int) -> None:
        """Several calls: the one clicked in the list gets the panel (hold, hang up...)."""
        if 0 <= row < self.calls.rowCount():
            view = self.calls.calls()[row]
            self.chosen_key = None if view.ringing_in else view.key
            self._show_panel()

    def _show_panel(self) -> None:
        chosen = self.calls.get(self.chosen_key) if self.chosen_key else None
        shown = chosen or self.calls.active()
        self.panel.show_call(shown)
        self.panel.setVisible(shown is not None)
        self.calls_view.setVisible(self.calls.rowCount() > 1)
        if shown is not None:
            self.calls_view.setCurrentIndex(self.calls.index(self.calls.row_of(shown.key) or 0))

    def _open_incoming(self, view: CallView) -> None:
        dialog = IncomingCallDialog(view, self)
        dialog.answered.connect(self.answer)
        dialog.rejected_call.connect(self.reject)
        self.incoming[view.key] = dialog
        dialog.show()
        if self.tray is not None:
            self.tray.showMessage("Incoming call", view.display_name or view.remote)

    def _on_registration(self, event: RegistrationUpdated) -> None:
        words = REGISTRATION_WORDS[event.state]
        self.registration_label.setText(f"{words}: {event.detail}" if event.detail else words)

    def _on_pbx_status(self, event: PbxStatus) -> None:
        self.pbx_label.setText(describe_pbx(event))
        # Counting the phones made the PBX write its pending bindings (it batches them), so
        # the directory read now agrees with the count just shown.
        self._refresh_directory()

    def _on_notice(self, event: Notice) -> None:
        self.show_notice(event.text)

    _HANDLERS: dict[type, Callable[[MainWindow, Any], None]] = {
        CallUpdated: _on_call,
        RegistrationUpdated: _on_registration,
        PbxStatus: _on_pbx_status,
        Notice: _on_notice,
    }

    def show_notice(self, text: str) -> None:
        self.last_notice = text
        self.statusBar().showMessage(text, 10000)

    # ------------------------------------------------------------------ refresh

    def refresh(self) -> None:
        self.refresh_history()
        if self.status_fn is not None:  # the directory follows the status (_on_pbx_status)
            self.bridge.submit(self.status_fn, on_done=self.bridge.publish, on_error=lambda _: None)
        else:
            self._refresh_directory()

    def _refresh_directory(self) -> None:
        if self.desk is not None:
            self.directory.set_rows(self.desk.directory())

    def refresh_history(self) -> None:
        if self.desk is not None:
            self.history.set_cdrs(self.desk.history(), self.desk.me)

    def detach(self) -> None:
        """Quit: stop reading the store and applying events (the runtime is stopping)."""
        self._refresher.stop()
        self.desk = None
        self.status_fn = None
        self.bridge.phone_event.disconnect(self.on_event)
        for dialog in self.incoming.values():
            dialog.close()
        self.incoming.clear()
        if self.ringer is not None:
            self.ringer.stop()
        if self.tray is not None:
            self.tray.hide()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Digits typed anywhere go to the number field (the dial pad is the keyboard)."""
        text = event.text()
        plain = event.modifiers() in (Qt.KeyboardModifier.NoModifier,
                                      Qt.KeyboardModifier.KeypadModifier)  # fmt: skip
        if plain and text and text in DIAL_KEYS:
            self.tabs.setCurrentIndex(0)
            self.dialpad.number.setFocus()
            self.dialpad.press(text)
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.tray is not None and self.tray.isVisible():
            event.ignore()  # the PBX keeps running; the tray brings the window back
            self.hide()
            self.tray.showMessage("DeskPhone", "Still running here; calls still ring.")
            return
        event.accept()
        self.quit_requested.emit()


def describe_pbx(status: PbxStatus) -> str:
    if not status.running:
        return "External PBX"
    phones = "1 phone" if status.phones_registered == 1 else f"{status.phones_registered} phones"
    calls = "1 call" if status.calls_in_progress == 1 else f"{status.calls_in_progress} calls"
    return f"PBX: {phones}, {calls}"
