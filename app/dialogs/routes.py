"""Settings page: outbound routes, tried in order (the first whose pattern matches wins).

Patterns are FreePBX dial patterns (`9|NXXNXXXXXX`, `011.`...) or `re:REGEX`,
checked with pbx.routing.compile_pattern before anything is stored, so a
typo is reported here in plain words instead of failing calls later.
"""

from __future__ import annotations

from app.dialogs.widgets import button, form_of, message_label, named_edit
from app.qt import QComboBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget
from pbx.routing import PatternError, compile_pattern
from pbx.store import Store, StoreError
from pbx.store.trunks import Route


def split_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.replace(",", " ").split() if part.strip())


class RoutesPage(QWidget):
    def __init__(self, store: Store, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.order = QLabel("", self)
        self.order.setWordWrap(True)
        self.order.setAccessibleName("Routes in the order they are tried")
        self.names = QComboBox(self)
        self.names.setAccessibleName("Route")
        self.name = named_edit(self, "Route name")
        self.patterns = named_edit(self, "Dial patterns")
        self.patterns.setPlaceholderText("e.g. 9|NXXNXXXXXX, 011.")
        self.trunks = named_edit(self, "Trunks in failover order")
        self.strip = QSpinBox(self)
        self.strip.setRange(0, 20)
        self.strip.setAccessibleName("Digits to strip")
        self.prepend = named_edit(self, "Digits to prepend")
        self.add_button = button(self, "Add route", "Add route", self.add)
        self.remove_button = button(self, "Remove", "Remove route", self.remove)
        self.first_button = button(self, "Try first", "Move route first", self.move_first)
        self.message = message_label(self, "Route message")
        form = form_of((("Name", self.name), ("Patterns", self.patterns),
                        ("Trunks", self.trunks), ("Strip", self.strip),
                        ("Prepend", self.prepend)))  # fmt: skip
        row = QHBoxLayout()
        row.addWidget(self.names, 1)
        row.addWidget(self.first_button)
        row.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.order)
        layout.addLayout(row)
        layout.addLayout(form)
        layout.addWidget(self.add_button)
        layout.addWidget(self.message)
        self.reload()

    def reload(self) -> None:
        routes = self.store.list_routes()
        self.names.clear()
        self.names.addItems([r.name for r in routes])
        lines = [f"{r.position}. {r.name}: {' '.join(r.patterns)} → {', '.join(r.trunks)}"
                 for r in routes]  # fmt: skip
        self.order.setText("\n".join(lines) or "No outbound routes: only extensions can be called.")

    def add(self) -> bool:
        patterns, trunks = split_list(self.patterns.text()), split_list(self.trunks.text())
        for pattern in patterns:
            try:
                compile_pattern(pattern)
            except PatternError as exc:
                self.message.setText(f"Not added: {exc}")
                return False
        if not trunks:
            self.message.setText("Not added: name at least one trunk to send the calls to.")
            return False
        route = Route(name=self.name.text().strip(), patterns=patterns, trunks=trunks,
                      strip=self.strip.value(), prepend=self.prepend.text().strip())  # fmt: skip
        try:
            self.store.add_route(route)
        except StoreError as exc:
            self.message.setText(f"Not added: {exc}")
            return False
        self.message.setText(f"Route {route.name} added; it is tried last.")
        self.reload()
        return True

    def remove(self) -> None:
        name = self.names.currentText()
        if not name:
            return
        self.store.remove_route(name)
        self.message.setText(f"Route {name} removed.")
        self.reload()

    def move_first(self) -> None:
        name = self.names.currentText()
        if name:
            self.store.move_route(name, 1)
            self.message.setText(f"Route {name} is now tried first.")
            self.reload()
