"""Settings page: the embedded PBX's extensions (add, edit, remove, strong passwords).

The PBX keeps only digest HA1 values, so a password is shown once, when
it is set, together with what to type into a hard phone.
"""

from __future__ import annotations

import time

from app.dialogs.widgets import button, message_label, named_edit
from app.models import DirectoryEntry, DirectoryModel
from app.qt import (
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from app.secrets import strong_password
from pbx.store import Store, StoreError


def phone_instructions(number: str, password: str, server: str, realm: str) -> str:
    return (
        f"On the hard phone, set: SIP server / registrar {server}, user name and "
        f"authentication ID {number}, password {password}, realm {realm} (if asked)."
    )


class ExtensionsPage(QWidget):
    def __init__(self, store: Store, server: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.server = server
        self.model = DirectoryModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setAccessibleName("Extensions")
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.clicked.connect(lambda index: self.edit(index.row()))
        self.number = named_edit(self, "Extension number")
        self.name = named_edit(self, "Extension name")
        self.password = named_edit(self, "Extension password")
        self.password.setPlaceholderText("leave empty to keep the current password")
        self.generate = QPushButton("Generate", self)
        self.generate.setAccessibleName("Generate a strong password")
        self.generate.clicked.connect(lambda: self.password.setText(strong_password()))
        self.save_button = button(self, "Save extension", "Save extension", self.save)
        self.remove_button = button(self, "Remove", "Remove extension", self.remove)
        self.message = message_label(self, "Extension message")
        form = QFormLayout()
        form.addRow("Number", self.number)
        form.addRow("Name", self.name)
        row = QHBoxLayout()
        row.addWidget(self.password)
        row.addWidget(self.generate)
        form.addRow("Password", row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        self.reload()

    def reload(self) -> None:
        counts = self.store.active_binding_counts(time.time())
        self.model.set_rows(
            [DirectoryEntry(e.number, e.name, counts.get(e.number, 0), e.enabled)
             for e in self.store.list_extensions()]
        )  # fmt: skip

    def edit(self, row: int) -> None:
        entry = self.model.row(row)
        self.number.setText(entry.number)
        self.name.setText(entry.name)
        self.password.clear()

    def save(self) -> None:
        number, name, password = (self.number.text().strip(), self.name.text().strip(),
                                  self.password.text())  # fmt: skip
        try:
            if self.store.find_extension(number) is None:
                if not password:
                    password = strong_password()
                self.store.add_extension(number, password, name)
                done = f"Extension {number} added."
            else:
                self.store.update_extension(number, name=name)
                if password:
                    self.store.set_password(number, password)
                done = f"Extension {number} saved."
        except StoreError as exc:
            self.message.setText(str(exc))
            return
        if password:
            done += " " + phone_instructions(number, password, self.server, self.store.realm)
        self.message.setText(done)
        self.password.clear()
        self.reload()

    def remove(self) -> None:
        number = self.number.text().strip()
        try:
            self.store.remove_extension(number)
        except StoreError as exc:
            self.message.setText(str(exc))
            return
        self.message.setText(f"Extension {number} removed.")
        self.reload()
