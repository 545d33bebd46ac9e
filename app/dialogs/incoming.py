"""The incoming-call dialog: who is calling, Answer or Reject.

It does not block: the window opens it with show(), and closes it itself
when the caller gives up (the call leaves the RINGING state).
"""

from __future__ import annotations

from app.phone import CallView
from app.qt import QDialog, QHBoxLayout, QLabel, QPushButton, Qt, QVBoxLayout, QWidget, Signal


class IncomingCallDialog(QDialog):
    answered = Signal(str)
    rejected_call = Signal(str)

    def __init__(self, view: CallView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = view.key
        self.setWindowTitle("Incoming call")
        who = view.display_name or view.remote
        self.caller = QLabel(f"<b>{who}</b><br>{view.remote}" if view.display_name else who, self)
        self.caller.setAccessibleName("Caller")
        self.caller.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.answer_button = QPushButton("Answer", self)
        self.answer_button.setAccessibleName("Answer")
        self.answer_button.setDefault(True)
        self.reject_button = QPushButton("Reject", self)
        self.reject_button.setAccessibleName("Reject")
        self.answer_button.clicked.connect(self._answer)
        self.reject_button.clicked.connect(self._reject)
        buttons = QHBoxLayout()
        buttons.addWidget(self.answer_button)
        buttons.addWidget(self.reject_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Incoming call from", self))
        layout.addWidget(self.caller)
        layout.addLayout(buttons)

    def _answer(self) -> None:
        self.answered.emit(self.key)
        self.accept()

    def _reject(self) -> None:
        self.rejected_call.emit(self.key)
        self.reject()
