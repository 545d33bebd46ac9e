"""Settings page: SIP trunks to carriers, with field validation and a Test button.

Errors are shown in the page in plain words and the trunk is not saved.
The trunk's password stays in the PBX's store: the PBX itself answers the
carrier's digest challenges with it (pbx/trunks.py), unlike the softphone's
own password, which goes to the OS keyring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.dialogs.widgets import button, form_of, message_label, named_edit
from app.qt import QCheckBox, QComboBox, QHBoxLayout, QLineEdit, QSpinBox, QVBoxLayout, QWidget
from app.trunk_probe import check_host, probe_trunk
from pbx.sip.locate import wants_srv
from pbx.store import Store, StoreError
from pbx.store.trunks import Trunk

Submit = Callable[..., Any]
"""Bridge.submit: run the probe on the app's loop, result back on the GUI thread."""


class TrunksPage(QWidget):
    def __init__(self, store: Store, submit: Submit | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.submit = submit
        self.names = QComboBox(self)
        self.names.setAccessibleName("Trunks")
        self.names.currentTextChanged.connect(self.load)
        self.name = named_edit(self, "Trunk name")
        self.host = named_edit(self, "Carrier host")
        self.port = QSpinBox(self)
        self.port.setRange(1, 65535)
        self.port.setValue(5060)
        self.port.setAccessibleName("Carrier port")
        self.transport = QComboBox(self)
        self.transport.addItems(["UDP", "TCP"])
        self.transport.setAccessibleName("Transport")
        self.username = named_edit(self, "Trunk user name")
        self.password = named_edit(self, "Trunk password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.register = QCheckBox("Register with the carrier", self)
        self.prefix = named_edit(self, "Dial prefix")
        self.networks = named_edit(self, "Carrier networks")
        self.networks.setPlaceholderText("e.g. 203.0.113.0/24 (optional)")
        self.save_button = button(self, "Save trunk", "Save trunk", self.save)
        self.test_button = button(self, "Test", "Test trunk", self.test)
        self.message = message_label(self, "Trunk message")
        form = form_of((("Name", self.name), ("Host", self.host), ("Port", self.port),
                        ("Transport", self.transport), ("User name", self.username),
                        ("Password", self.password), ("", self.register),
                        ("Prefix", self.prefix), ("Calls also from", self.networks)))  # fmt: skip
        buttons = QHBoxLayout()
        buttons.addWidget(self.test_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.names)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        self.reload()

    def reload(self) -> None:
        self.names.blockSignals(True)
        self.names.clear()
        self.names.addItems(["New trunk…"] + [t.name for t in self.store.list_trunks()])
        self.names.blockSignals(False)

    def load(self, name: str) -> None:
        trunk = self.store.find_trunk(name) or Trunk(name="", host="")
        self.name.setText(trunk.name)
        self.host.setText(trunk.host)
        self.port.setValue(trunk.port)
        self.transport.setCurrentText(trunk.transport)
        self.username.setText(trunk.username)
        self.password.clear()
        self.register.setChecked(trunk.register)
        self.prefix.setText(trunk.prefix)
        self.networks.setText(trunk.match_networks)

    def form_trunk(self) -> Trunk:
        """The trunk the form describes; a host name left on port 5060 finds the carrier's
        servers through DNS SRV, as `deskpbx trunk add` without --port does (RFC 3263)."""
        host, port = self.host.text().strip(), self.port.value()
        return Trunk(
            name=self.name.text().strip(),
            host=host,
            port=port,
            srv=wants_srv(host, port_given=port != 5060),
            transport=self.transport.currentText(),
            username=self.username.text().strip(),
            password=self.password.text(),
            register=self.register.isChecked(),
            prefix=self.prefix.text().strip(),
            match_networks=self.networks.text().strip(),
        )

    def save(self) -> bool:
        trunk = self.form_trunk()
        problem = check_host(trunk.host)
        if not trunk.name:
            problem = "Give the trunk a name (letters, digits, '-', '_', '.')."
        if problem is not None:
            self.message.setText(f"Not saved: {problem}")
            return False
        try:
            if self.store.find_trunk(trunk.name) is None:
                self.store.add_trunk(trunk)
            else:
                edited = (
                    "host",
                    "port",
                    "srv",
                    "transport",
                    "username",
                    "register",
                    "prefix",
                    "match_networks",
                )
                changes = {k: getattr(trunk, k) for k in edited}
                if trunk.password:
                    changes["password"] = trunk.password
                self.store.update_trunk(trunk.name, **changes)
        except StoreError as exc:
            self.message.setText(f"Not saved: {exc}")
            return False
        self.message.setText(f"Trunk {trunk.name} saved.")
        self.reload()
        return True

    def test(self) -> None:
        trunk = self.form_trunk()
        problem = check_host(trunk.host)
        if problem is not None or self.submit is None:
            self.message.setText(problem or "Testing needs the phone running.")
            return
        self.message.setText(f"Testing {trunk.host}…")
        self.submit(probe_trunk, trunk.host, trunk.port, trunk.transport,
                    on_done=self.message.setText,
                    on_error=lambda exc: self.message.setText(f"Test failed: {exc}"))  # fmt: skip
