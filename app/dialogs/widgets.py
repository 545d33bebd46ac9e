"""The pieces every settings page builds the same way.

Each page names its widgets for screen readers (and for the GUI tests, which
find them by accessible name), and reports problems in a word-wrapped label
under its form; building them here keeps the pages to what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from app.qt import QFormLayout, QLabel, QLayout, QLineEdit, QPushButton, QWidget


def named_edit(parent: QWidget, name: str) -> QLineEdit:
    edit = QLineEdit(parent)
    edit.setAccessibleName(name)
    return edit


def message_label(parent: QWidget, name: str) -> QLabel:
    label = QLabel("", parent)
    label.setWordWrap(True)
    label.setAccessibleName(name)
    return label


def button(parent: QWidget, text: str, name: str, clicked: Callable[[], object]) -> QPushButton:
    push = QPushButton(text, parent)
    push.setAccessibleName(name)
    push.clicked.connect(clicked)
    return push


def form_of(rows: Iterable[tuple[str, QWidget | QLayout]]) -> QFormLayout:
    form = QFormLayout()
    for label, field in rows:
        form.addRow(label, field)
    return form
