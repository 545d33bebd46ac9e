"""The dial pad: a number field with keyboard entry and paste, twelve keys, a call button.

Pasted text is cleaned the way people copy numbers ("+1 (555) 123-4567",
"tel:+1-555-1234") so that what is dialled is what the PBX's dialplan
expects; a sip: URI or user@host is kept as written.
"""

from __future__ import annotations

import re

from app.qt import (
    QGridLayout,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
    Signal,
)

KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#")
KEY_LETTERS = {"2": "ABC", "3": "DEF", "4": "GHI", "5": "JKL", "6": "MNO", "7": "PQRS",
               "8": "TUV", "9": "WXYZ", "0": "+"}  # fmt: skip
KEY_HEIGHT = 48
_VISUAL_SEPARATORS = re.compile(r"[\s\-().\u00a0/]")


def clean_number(text: str) -> str:
    """'+1 (555) 123-4567' -> '+15551234567'; 'tel:+1-555' -> '+1555'; URIs are kept."""
    text = text.strip()
    lowered = text.lower()
    if lowered.startswith("tel:"):
        text = text[4:].split(";", 1)[0]  # RFC 3966: drop parameters such as ;phone-context
    elif lowered.startswith(("sip:", "sips:")) or "@" in text:
        return text
    return _VISUAL_SEPARATORS.sub("", text)


class NumberEdit(QLineEdit):
    """A line edit whose paste cleans the number (Ctrl+V, Shift+Insert)."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.matches(QKeySequence.StandardKey.Paste):
            self.paste_text(QGuiApplication.clipboard().text())
            return
        super().keyPressEvent(event)

    def paste_text(self, text: str) -> None:
        self.insert(clean_number(text))


class DialPad(QWidget):
    """`dial_requested(target)` on the call button or Enter; `key_pressed(digit)` per key."""

    dial_requested = Signal(str)
    key_pressed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.number = NumberEdit(self)
        self.number.setPlaceholderText("Number or sip: address")
        self.number.setAccessibleName("Number to dial")
        self.number.setObjectName("number")
        self.number.setClearButtonEnabled(True)
        self.number.returnPressed.connect(self.request_dial)
        grid = QGridLayout()
        self.keys: dict[str, QPushButton] = {}
        for position, key in enumerate(KEYS):
            button = QPushButton(f"{key}\n{KEY_LETTERS.get(key, '')}".rstrip(), self)
            button.setAccessibleName(f"Key {key}")
            button.setAutoDefault(False)
            button.setMinimumHeight(KEY_HEIGHT)
            button.clicked.connect(lambda _=False, k=key: self.press(k))
            grid.addWidget(button, position // 3, position % 3)
            self.keys[key] = button
        self.call_button = QPushButton("Call", self)
        self.call_button.setAccessibleName("Call")
        self.call_button.setToolTip("Call the number (Enter)")
        self.call_button.setObjectName("callButton")
        self.call_button.clicked.connect(self.request_dial)
        layout = QVBoxLayout(self)
        layout.addWidget(self.number)
        layout.addLayout(grid)
        layout.addWidget(self.call_button)
        layout.addStretch(1)

    def press(self, key: str) -> None:
        self.number.insert(key)
        self.key_pressed.emit(key)

    def request_dial(self) -> None:
        target = clean_number(self.number.text())
        if target:
            self.dial_requested.emit(target)

    def set_number(self, text: str) -> None:
        self.number.setText(clean_number(text))
