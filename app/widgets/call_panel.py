"""The active-call panel: who, state, timer, hold, mute, transfer, DTMF keypad, hang up.

The panel shows one `CallView` and turns button presses into signals
carrying the call's key; it never talks to the phone itself. The timer only
ticks while a call is connected, so an idle window costs no CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.models import describe_call, format_duration
from app.phone import CallState, CallView
from app.qt import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
    SignalInstance,
)
from app.widgets.dialpad import KEYS

ANSWERED_STATES = frozenset({CallState.CONNECTED, CallState.ON_HOLD})


class CallPanel(QWidget):
    hold_toggled = Signal(str, bool)
    mute_toggled = Signal(str, bool)
    transfer_requested = Signal(str)
    dtmf_pressed = Signal(str, str)
    hangup_requested = Signal(str)

    def __init__(
        self, parent: QWidget | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(parent)
        self.clock = clock
        self.view: CallView | None = None
        self.title = QLabel(self)
        self.title.setAccessibleName("Call")
        self.title.setObjectName("callTitle")
        self.title.setWordWrap(True)
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.timer_label = QLabel("0:00", self)
        self.timer_label.setAccessibleName("Call duration")
        self.timer_label.setObjectName("callTimer")
        self.timer_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hold = self._button("Hold", "Put the call on hold", checkable=True)
        self.mute = self._button("Mute", "Mute the microphone", checkable=True)
        self.transfer = self._button("Transfer", "Transfer the call to another number")
        self.keypad_button = self._button("Keypad", "Show keys to send tones", checkable=True)
        self.hangup = self._button("Hang up", "End the call (Esc)")
        self.hangup.setObjectName("hangupButton")
        self.hold.toggled.connect(lambda on: self._emit(self.hold_toggled, on))
        self.mute.toggled.connect(lambda on: self._emit(self.mute_toggled, on))
        self.transfer.clicked.connect(lambda: self._emit(self.transfer_requested))
        self.hangup.clicked.connect(lambda: self._emit(self.hangup_requested))
        self.keypad = self._build_keypad()
        self.keypad_button.toggled.connect(self.keypad.setVisible)
        self.keypad.hide()
        row = QHBoxLayout()
        for button in (self.hold, self.mute, self.transfer, self.keypad_button):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.timer_label)
        layout.addLayout(row)
        layout.addWidget(self.keypad)
        layout.addWidget(self.hangup)
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self.refresh_timer)

    def _button(self, text: str, tip: str, checkable: bool = False) -> QPushButton:
        button = QPushButton(text, self)
        button.setAccessibleName(text)
        button.setToolTip(tip)
        button.setCheckable(checkable)
        button.setAutoDefault(False)
        return button

    def _build_keypad(self) -> QWidget:
        box = QWidget(self)
        grid = QGridLayout(box)
        for position, key in enumerate(KEYS):
            button = QPushButton(key, box)
            button.setAccessibleName(f"Send tone {key}")
            button.setAutoDefault(False)
            button.clicked.connect(lambda _=False, k=key: self._emit(self.dtmf_pressed, k))
            grid.addWidget(button, position // 3, position % 3)
        return box

    def _emit(self, signal: SignalInstance, *args: object) -> None:
        if self.view is not None:
            signal.emit(self.view.key, *args)

    def show_call(self, view: CallView | None) -> None:
        """Show `view` (None: no call); button states follow it without re-emitting."""
        self.view = view
        if view is None:
            self._ticker.stop()
            return
        self.title.setText(describe_call(view))
        answered = view.state in ANSWERED_STATES
        for button, checked in ((self.hold, view.on_hold), (self.mute, view.muted)):
            button.blockSignals(True)
            button.setChecked(checked)
            button.blockSignals(False)
        for button in (self.hold, self.transfer, self.keypad_button):
            button.setEnabled(answered)
        if answered and view.answered_at is not None:
            if not self._ticker.isActive():
                self._ticker.start()
        else:
            self._ticker.stop()
        self.refresh_timer()

    def refresh_timer(self) -> None:
        view = self.view
        if view is None or view.answered_at is None:
            self.timer_label.setText("0:00")
            return
        self.timer_label.setText(format_duration(max(0.0, self.clock() - view.answered_at)))

    @property
    def ticking(self) -> bool:
        return self._ticker.isActive()
