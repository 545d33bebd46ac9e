"""Settings dialog pages against a real store: extensions, trunks, account secrets, audio."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.audio import NO_SOUND_CARD, MemoryDevice, SoundDeviceBackend
from app.bridge import Bridge
from app.dialogs.settings import SettingsDialog
from app.secrets import ACCOUNT_SECRET, KEYRING, PBX_STORE, SecretStore, strong_password
from app.settings import EXTERNAL, AppSettings, load_settings
from app.trunk_probe import check_host, probe_trunk
from pbx.store import Store


class EmptyBackend:
    problem = ""

    def devices(self) -> list:
        self.problem = NO_SOUND_CARD
        return []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.in_dir(tmp_path) as s:
        s.add_extension("1001", "secret-1001", "Reception")
        yield s


def make_dialog(qtbot, store, tmp_path, submit=None, audio=None) -> SettingsDialog:
    dialog = SettingsDialog(
        AppSettings(), tmp_path / "config", store=store, secrets=SecretStore(store),
        audio=audio or MemoryDevice(), server="192.0.2.10:5060", submit=submit,
    )  # fmt: skip
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_add_an_extension_with_a_generated_password(qtbot, store, tmp_path) -> None:
    dialog = make_dialog(qtbot, store, tmp_path)
    page = dialog.extensions
    assert page is not None and page.model.rowCount() == 1
    page.number.setText("1002")
    page.name.setText("Kitchen")
    page.generate.click()
    password = page.password.text()
    assert len(password) == 16 and password.isalnum()
    page.save_button.click()
    ext = store.get_extension("1002")
    assert ext.name == "Kitchen"
    assert page.model.rowCount() == 2
    text = page.message.text()
    assert text.startswith("Extension 1002 added. On the hard phone, set: SIP server")
    assert "192.0.2.10:5060" in text and password in text and "realm deskpbx" in text


def test_extension_errors_are_shown_not_raised(qtbot, store, tmp_path) -> None:
    dialog = make_dialog(qtbot, store, tmp_path)
    page = dialog.extensions
    page.number.setText("1x")
    page.password.setText("long-enough-pw")
    page.save_button.click()
    assert page.message.text() == "invalid extension number '1x': use 2 to 10 digits"
    page.number.setText("1003")
    page.password.setText("short")
    page.save_button.click()
    assert "too short" in page.message.text()
    assert store.find_extension("1003") is None


def test_edit_and_remove_an_extension(qtbot, store, tmp_path) -> None:
    dialog = make_dialog(qtbot, store, tmp_path)
    page = dialog.extensions
    page.edit(0)
    assert page.number.text() == "1001" and page.name.text() == "Reception"
    page.name.setText("Front desk")
    page.save_button.click()
    assert store.get_extension("1001").name == "Front desk"
    page.remove_button.click()
    assert store.find_extension("1001") is None
    assert page.message.text() == "Extension 1001 removed."
    assert page.model.rowCount() == 0


def test_strong_passwords_differ_and_mix_letters_and_digits() -> None:
    passwords = {strong_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(any(c.isdigit() for c in p) and any(c.isalpha() for c in p) for p in passwords)


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        ("sip.example .com", "is not a valid host name"),
        ("sip:carrier.example.com", "is an address, not a server"),
        ("", "Enter the carrier's SIP server"),
        ("bad_host!", "is not a valid host name"),
    ],
)
def test_a_trunk_with_a_bad_host_is_rejected(qtbot, store, tmp_path, host, fragment) -> None:
    dialog = make_dialog(qtbot, store, tmp_path)
    page = dialog.trunks
    assert page is not None
    page.name.setText("carrier")
    page.host.setText(host)
    assert page.save() is False
    assert page.message.text().startswith("Not saved: ")
    assert fragment in page.message.text()
    assert store.list_trunks() == []


def test_a_good_trunk_is_saved_and_edited(qtbot, store, tmp_path) -> None:
    dialog = make_dialog(qtbot, store, tmp_path)
    page = dialog.trunks
    page.name.setText("carrier")
    page.host.setText("sip.example.com")
    page.username.setText("acct42")
    page.password.setText("pw-for-carrier")
    page.register.setChecked(True)
    assert page.save() is True
    trunk = store.get_trunk("carrier")
    assert (trunk.host, trunk.port, trunk.username, trunk.register) == (
        "sip.example.com", 5060, "acct42", True)  # fmt: skip
    assert trunk.password == "pw-for-carrier"
    assert trunk.srv is True  # a name on the default port: DNS SRV first (RFC 3263)
    page.names.setCurrentText("carrier")
    assert page.host.text() == "sip.example.com" and page.password.text() == ""
    page.port.setValue(5080)
    assert page.save() is True
    trunk = store.get_trunk("carrier")
    assert trunk.port == 5080 and trunk.password == "pw-for-carrier"
    assert trunk.srv is False  # a port of its own: that server only
    page.networks.setText("203.0.113.0/24, 198.51.100.9")
    assert page.save() is True
    assert store.get_trunk("carrier").match_networks == "203.0.113.0/24,198.51.100.9/32"
    page.networks.setText("not a network")
    assert page.save() is False
    assert page.message.text() == (
        "Not saved: bad match network 'not a network': an IP address or CIDR"
    )


def test_store_validation_message_reaches_the_page(qtbot, store, tmp_path) -> None:
    dialog = make_dialog(qtbot, store, tmp_path)
    page = dialog.trunks
    page.name.setText("bad name")
    page.host.setText("sip.example.com")
    assert page.save() is False
    assert page.message.text() == (
        "Not saved: bad trunk name 'bad name': letters, digits, '-', '_', '.'"
    )


class OptionsAnswerer(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        assert data.startswith(b"OPTIONS sip:")
        self.transport.sendto(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", addr)


def test_trunk_test_button_reports_in_plain_words(qtbot, store, tmp_path, loop_thread) -> None:
    bridge = Bridge(loop_thread)

    async def serve() -> tuple:
        return await asyncio.get_running_loop().create_datagram_endpoint(
            OptionsAnswerer, local_addr=("127.0.0.1", 0))  # fmt: skip

    server, _ = asyncio.run_coroutine_threadsafe(serve(), loop_thread).result(5)
    port = server.get_extra_info("sockname")[1]
    dialog = make_dialog(qtbot, store, tmp_path, submit=bridge.submit)
    page = dialog.trunks
    page.host.setText("127.0.0.1")
    page.port.setValue(port)
    page.test_button.click()
    qtbot.waitUntil(lambda: "answered" in page.message.text(), timeout=5000)
    assert page.message.text() == "127.0.0.1 answered: 200 OK. The carrier is reachable."
    loop_thread.call_soon_threadsafe(server.close)
    page.host.setText("exa mple")
    page.test_button.click()
    assert "is not a valid host name" in page.message.text()


def test_probe_of_a_name_follows_its_srv_records(loop_thread) -> None:
    """The Test button finds a carrier given by name where the PBX will: its SRV records."""
    from pbx.net.dns import Locator
    from pbx.sip.locate import SrvRecord
    from tests.unit.test_dns_locator import FakeDns

    async def probe() -> str:
        loop = asyncio.get_running_loop()
        server, _ = await loop.create_datagram_endpoint(OptionsAnswerer,
                                                        local_addr=("127.0.0.1", 0))  # fmt: skip
        port = server.get_extra_info("sockname")[1]
        srv = [SrvRecord(10, 0, port, "sip.test")]
        dns = FakeDns({("_sip._udp.carrier.test", "SRV"): (srv, 60.0),
                       ("sip.test", "A"): (["127.0.0.1"], 60.0)})  # fmt: skip
        try:
            return await probe_trunk("carrier.test", 5060, locator=Locator(query=dns))
        finally:
            server.close()

    text = asyncio.run_coroutine_threadsafe(probe(), loop_thread).result(10)
    assert text == "carrier.test answered: 200 OK. The carrier is reachable."


def test_probe_of_a_silent_port_says_no_answer(loop_thread) -> None:
    async def silent() -> str:
        loop = asyncio.get_running_loop()
        sink, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                      local_addr=("127.0.0.1", 0))  # fmt: skip
        port = sink.get_extra_info("sockname")[1]
        try:
            return await probe_trunk("127.0.0.1", port, timeout=0.3)
        finally:
            sink.close()

    text = asyncio.run_coroutine_threadsafe(silent(), loop_thread).result(5)
    assert text.startswith("No answer from 127.0.0.1 (127.0.0.1:")
    assert text.endswith("within 0.3 s.")


def test_check_host_accepts_names_and_addresses() -> None:
    for good in ("sip.example.com", "10.0.0.1", "::1", "[2001:db8::1]", "carrier-1.example"):
        assert check_host(good) is None, good


def test_account_password_goes_to_the_keyring(qtbot, store, tmp_path, memory_keyring) -> None:
    dialog = make_dialog(qtbot, store, tmp_path)
    dialog.account.mode.setCurrentIndex(1)
    assert dialog.account.server.isEnabled()
    dialog.account.server.setText("pbx.example.net")
    dialog.account.username.setText("alice")
    dialog.account.password.setText("alice-secret")
    dialog.accept()
    assert memory_keyring.secrets[("deskphone", ACCOUNT_SECRET)] == "alice-secret"
    assert dialog.account.where.text().startswith(f"The password is kept in {KEYRING}. ")
    saved = load_settings(tmp_path / "config")
    assert (saved.account_mode, saved.server, saved.username) == (EXTERNAL, "pbx.example.net",
                                                                  "alice")  # fmt: skip
    assert "alice-secret" not in (tmp_path / "config" / "deskphone.json").read_text()


def test_without_a_keyring_the_password_goes_to_the_pbx_store(
    qtbot, store, tmp_path, no_keyring
) -> None:
    dialog = make_dialog(qtbot, store, tmp_path)
    dialog.account.mode.setCurrentIndex(1)
    dialog.account.password.setText("alice-secret")
    dialog.accept()
    assert dialog.account.where.text().startswith(f"The password is kept in {PBX_STORE}. ")
    assert SecretStore(store).get(ACCOUNT_SECRET) == "alice-secret"


def test_audio_page_without_a_sound_card_says_so(qtbot, store, tmp_path) -> None:
    dialog = make_dialog(qtbot, store, tmp_path, audio=EmptyBackend())
    assert dialog.audio.problem.text() == NO_SOUND_CARD
    assert dialog.audio.input.count() == 1 and dialog.audio.input.currentText() == "System default"


def test_real_backend_never_raises() -> None:
    backend = SoundDeviceBackend()
    devices = backend.devices()
    assert devices or backend.problem.startswith("No sound card found")


def test_routes_page_adds_checks_orders_and_removes(qtbot, store, tmp_path) -> None:
    from pbx.store.trunks import Trunk

    store.add_trunk(Trunk(name="carrier", host="sip.example.com"))
    store.add_trunk(Trunk(name="backup", host="sip2.example.com"))
    dialog = make_dialog(qtbot, store, tmp_path)
    page = dialog.routes
    assert page is not None
    assert page.order.text() == "No outbound routes: only extensions can be called."
    page.name.setText("national")
    page.patterns.setText("0[")
    page.trunks.setText("carrier")
    assert page.add() is False
    assert page.message.text().startswith("Not added: ")
    page.patterns.setText("9|NXXNXXXXXX")
    page.trunks.setText("carrier, backup")
    page.strip.setValue(1)
    assert page.add() is True
    page.name.setText("intl")
    page.patterns.setText("011.")
    page.trunks.setText("nosuch")
    assert page.add() is False
    assert page.message.text() == "Not added: no trunk nosuch"
    page.trunks.setText("backup")
    assert page.add() is True
    assert [r.name for r in store.list_routes()] == ["national", "intl"]
    national = store.list_routes()[0]
    assert (national.patterns, national.trunks, national.strip) == (
        ("9|NXXNXXXXXX",), ("carrier", "backup"), 1)  # fmt: skip
    page.names.setCurrentText("intl")
    page.first_button.click()
    assert [r.name for r in store.list_routes()] == ["intl", "national"]
    assert page.order.text().splitlines()[0] == "1. intl: 011. → backup"
    page.names.setCurrentText("national")
    page.remove_button.click()
    assert [r.name for r in store.list_routes()] == ["intl"]


class FakeStream:
    def __init__(self, callback) -> None:
        self.callback = callback
        self.closed = False

    def start(self) -> None:
        import numpy as np

        loud = np.full((160, 1), 3277, dtype=np.int16)  # -20 dBFS
        self.callback(loud, 160, None, None)

    def close(self) -> None:
        self.closed = True


class FakeSound:
    def __init__(self) -> None:
        self.played: list[tuple] = []
        self.streams: list[FakeStream] = []

    def query_devices(self, device, kind):
        return {"default_samplerate": 48000.0}

    def play(self, data, rate, device=None):
        self.played.append((data.size, rate, device))

    def InputStream(self, device, channels, dtype, callback):  # noqa: N802 (sounddevice's name)
        self.streams.append(FakeStream(callback))
        return self.streams[-1]


class OneCard:
    problem = ""

    def devices(self) -> list:
        from app.audio import DeviceInfo

        return [DeviceInfo("USB headset", 1, 2, 48000.0, True, True)]


def test_audio_page_test_tone_and_microphone_meter(qtbot, store, tmp_path) -> None:
    sound = FakeSound()
    dialog = SettingsDialog(
        AppSettings(), tmp_path / "config", store=store, secrets=SecretStore(store),
        audio=OneCard(), sound=lambda: sound,
    )  # fmt: skip
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.tabs.setCurrentIndex(1)
    page = dialog.audio
    assert [page.output.itemText(i) for i in range(page.output.count())] == [
        "System default", "USB headset"]  # fmt: skip
    qtbot.waitUntil(lambda: page.meter.value() == -20, timeout=2000)
    page.output.setCurrentIndex(1)
    page.test_tone.click()
    assert sound.played == [(48000, 48000, "USB headset")]
    assert page.tone_result.text() == "Playing a 1 kHz tone for one second."
    dialog.reject()
    assert sound.streams and all(s.closed for s in sound.streams)
