"""The main window driven offscreen with a fake phone: dial pad, call panel, shortcuts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.bridge import Bridge
from app.models import CallsModel
from app.phone import (
    CallState,
    Notice,
    PbxStatus,
    RegistrationState,
    RegistrationUpdated,
)
from app.qt import QGuiApplication, Qt
from app.widgets.dialpad import clean_number
from app.window import MainWindow, describe_pbx
from tests.gui.fakes import FakePhone


@pytest.fixture
def window(qtbot, loop_thread, fake_phone: FakePhone) -> Iterator[MainWindow]:
    bridge = Bridge(loop_thread)
    fake_phone.publish = bridge.publish
    win = MainWindow(bridge, fake_phone, use_tray=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    qtbot.waitUntil(lambda: bridge.pending == 0, timeout=3000)


def wait_state(qtbot, win: MainWindow, state: CallState) -> None:
    qtbot.waitUntil(
        lambda: win.panel.view is not None and win.panel.view.state is state, timeout=3000
    )


def test_typing_a_number_and_enter_dials_it(qtbot, window: MainWindow, fake_phone) -> None:
    window.dialpad.number.setFocus()
    qtbot.keyClicks(window.dialpad.number, "1002")
    qtbot.keyClick(window.dialpad.number, Qt.Key.Key_Return)
    wait_state(qtbot, window, CallState.DIALING)
    assert fake_phone.actions == [("dial", "1002")]
    assert window.panel.isVisible()
    assert window.panel.title.text() == "1002 — Calling…"


def test_dial_pad_keys_and_call_button(qtbot, window: MainWindow, fake_phone) -> None:
    for key in "1003":
        qtbot.mouseClick(window.dialpad.keys[key], Qt.MouseButton.LeftButton)
    assert window.dialpad.number.text() == "1003"
    qtbot.mouseClick(window.dialpad.call_button, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, CallState.DIALING)
    assert fake_phone.actions == [("dial", "1003")]


def test_pasting_a_formatted_number_keeps_the_digits(qtbot, window: MainWindow) -> None:
    QGuiApplication.clipboard().setText("+1 (555) 123-4567")
    window.dialpad.number.setFocus()
    qtbot.keyClick(window.dialpad.number, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert window.dialpad.number.text() == "+15551234567"


@pytest.mark.parametrize(
    ("text", "cleaned"),
    [
        ("+1 (555) 123-4567", "+15551234567"),
        ("tel:+1-555-1234;phone-context=example.com", "+15551234"),
        ("sip:alice@example.com", "sip:alice@example.com"),
        (" 1002 ", "1002"),
        ("030 / 1234.56", "030123456"),
    ],
)
def test_clean_number(text: str, cleaned: str) -> None:
    assert clean_number(text) == cleaned


def test_connected_call_hold_mute_dtmf_and_escape_hangs_up(
    qtbot, window: MainWindow, fake_phone: FakePhone
) -> None:
    window.dial("1002")
    wait_state(qtbot, window, CallState.DIALING)
    assert not window.panel.hold.isEnabled()  # no hold before the answer
    key = window.panel.view.key
    fake_phone.far_end_answers(key)
    wait_state(qtbot, window, CallState.CONNECTED)
    assert window.panel.hold.isEnabled() and window.panel.ticking
    qtbot.mouseClick(window.panel.hold, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, CallState.ON_HOLD)
    assert window.panel.hold.isChecked()
    assert window.panel.title.text() == "1002 — On hold"
    qtbot.mouseClick(window.panel.hold, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, CallState.CONNECTED)
    qtbot.mouseClick(window.panel.mute, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.panel.view.muted, timeout=3000)
    qtbot.mouseClick(window.panel.keypad_button, Qt.MouseButton.LeftButton)
    assert window.panel.keypad.isVisible()
    window.panel.keypad.findChildren(type(window.panel.hold))[4].click()  # key "5"
    qtbot.waitUntil(lambda: ("dtmf", key, "5") in fake_phone.actions, timeout=3000)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.panel.view is None, timeout=3000)
    assert not window.panel.isVisible()
    assert fake_phone.actions == [
        ("dial", "1002"), ("hold", key), ("resume", key), ("mute", key, "True"),
        ("dtmf", key, "5"), ("hangup", key),
    ]  # fmt: skip


def test_call_timer_counts_from_the_answer(qtbot, window: MainWindow, fake_phone) -> None:
    now = [1000.0]
    window.panel.clock = lambda: now[0]
    fake_phone.now = 1000.0
    window.dial("1002")
    wait_state(qtbot, window, CallState.DIALING)
    fake_phone.far_end_answers(window.panel.view.key)
    wait_state(qtbot, window, CallState.CONNECTED)
    assert window.panel.timer_label.text() == "0:00"
    now[0] = 1075.4
    window.panel.refresh_timer()
    assert window.panel.timer_label.text() == "1:15"


def test_incoming_call_dialog_answers(qtbot, window: MainWindow, fake_phone) -> None:
    key = fake_phone.ring_in("1001", "Reception")
    qtbot.waitUntil(lambda: key in window.incoming, timeout=3000)
    dialog = window.incoming[key]
    assert dialog.isVisible()
    assert "Reception" in dialog.caller.text()
    qtbot.mouseClick(dialog.answer_button, Qt.MouseButton.LeftButton)
    wait_state(qtbot, window, CallState.CONNECTED)
    assert key not in window.incoming
    assert fake_phone.actions == [("answer", key)]


def test_escape_rejects_a_ringing_call(qtbot, window: MainWindow, fake_phone) -> None:
    key = fake_phone.ring_in("1001")
    qtbot.waitUntil(lambda: key in window.incoming, timeout=3000)
    window.hangup_current()
    qtbot.waitUntil(lambda: window.calls.rowCount() == 0, timeout=3000)
    assert fake_phone.actions == [("reject", key)]
    assert key not in window.incoming


def test_transfer_asks_for_a_target(qtbot, window: MainWindow, fake_phone) -> None:
    window.dial("1002")
    wait_state(qtbot, window, CallState.DIALING)
    key = window.panel.view.key
    fake_phone.far_end_answers(key)
    wait_state(qtbot, window, CallState.CONNECTED)
    qtbot.mouseClick(window.panel.transfer, Qt.MouseButton.LeftButton)
    assert window.transfer_dialog is not None and window.transfer_dialog.isVisible()
    window.transfer_dialog.setTextValue("1005")
    window.transfer_dialog.accept()
    qtbot.waitUntil(lambda: window.calls.rowCount() == 0, timeout=3000)
    assert ("transfer", key, "1005") in fake_phone.actions
    assert window.last_notice == "Call with 1002 ended: transferred to 1005"


def test_status_bar_shows_registration_and_pbx(qtbot, window: MainWindow) -> None:
    window.bridge.publish(RegistrationUpdated(RegistrationState.REGISTERED, "extension 1000"))
    window.bridge.publish(PbxStatus(True, 3, 1))
    qtbot.waitUntil(lambda: window.pbx_label.text() != "", timeout=3000)
    assert window.registration_label.text() == "Registered: extension 1000"
    assert window.pbx_label.text() == "PBX: 3 phones, 1 call"
    assert describe_pbx(PbxStatus(False)) == "External PBX"


def test_a_failed_action_says_so(qtbot, window: MainWindow, fake_phone) -> None:
    async def broken(target: str) -> str:
        raise RuntimeError("no route to 9999")

    fake_phone.dial = broken  # type: ignore[method-assign]
    window.dial("9999")
    qtbot.waitUntil(lambda: window.last_notice != "", timeout=3000)
    assert window.last_notice == "Calling 9999 failed: no route to 9999"
    window.bridge.publish(Notice("Transfer accepted"))
    qtbot.waitUntil(lambda: window.last_notice == "Transfer accepted", timeout=3000)


def test_ctrl_comma_asks_for_settings(qtbot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.settings_requested, timeout=2000):
        qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)


def test_controls_have_accessible_names(window: MainWindow) -> None:
    names = {w.accessibleName() for w in window.findChildren(type(window.panel.hold))}
    assert {"Call", "Key 1", "Key #", "Hold", "Mute", "Transfer", "Hang up", "Keypad"} <= names
    assert window.dialpad.number.accessibleName() == "Number to dial"


def test_calls_model_passes_the_qt_model_tester(qtmodeltester) -> None:
    from app.phone import CallDirection, CallView

    model = CallsModel()
    qtmodeltester.check(model)  # the tester stays attached and checks every change below
    a = CallView("a", "1002", CallDirection.OUTGOING, CallState.DIALING)
    b = CallView("b", "1003", CallDirection.INCOMING, CallState.RINGING)
    model.apply(a)
    model.apply(b)
    model.apply(CallView("a", "1002", CallDirection.OUTGOING, CallState.CONNECTED))
    assert [model.index(r).data() for r in range(2)] == [
        "1002 — Connected", "1003 — incoming call"]  # fmt: skip
    assert model.active() is not None and model.active().key == "a"
    model.apply(CallView("a", "1002", CallDirection.OUTGOING, CallState.ENDED))
    model.apply(CallView("x", "1009", CallDirection.OUTGOING, CallState.ENDED))  # never shown
    assert model.rowCount() == 1 and model.active() is None


def test_closing_without_a_tray_quits(qtbot, window: MainWindow) -> None:
    assert window.tray is None
    with qtbot.waitSignal(window.quit_requested, timeout=2000):
        window.close()


def test_before_the_phone_runs_actions_say_it_is_starting(qtbot, loop_thread) -> None:
    win = MainWindow(Bridge(), use_tray=False)
    qtbot.addWidget(win)
    assert win.registration_label.text() == "Starting…"
    win.dial("1002")
    assert win.last_notice == "Calling 1002: the phone is still starting"


class FakeRinger:
    def __init__(self) -> None:
        self.log: list[str] = []

    def start(self) -> None:
        self.log.append("start")

    def stop(self) -> None:
        self.log.append("stop")


def test_rings_while_a_call_waits(qtbot, window: MainWindow, fake_phone) -> None:
    ringer = window.ringer = FakeRinger()
    key = fake_phone.ring_in("1001")
    qtbot.waitUntil(lambda: ringer.log == ["start"], timeout=3000)
    window.answer(key)
    qtbot.waitUntil(lambda: ringer.log[-1:] == ["stop"], timeout=3000)
    assert ringer.log == ["start", "stop"]


def test_a_second_launch_hands_its_link_to_the_first(qtbot, tmp_path) -> None:
    from app.single import InstanceServer, instance_name, send_to_running

    name = instance_name(tmp_path)
    assert not send_to_running(name, "sip:1002")  # nobody runs yet
    server = InstanceServer(name)
    assert server.listening
    with qtbot.waitSignal(server.target_received, timeout=3000) as got:
        assert send_to_running(name, "tel:+15551234")
    assert got.args == ["tel:+15551234"]
    server.close()


def test_digits_typed_anywhere_go_to_the_number(qtbot, window: MainWindow) -> None:
    window.dialpad.call_button.setFocus()
    qtbot.keyClicks(window, "1002")
    assert window.dialpad.number.text() == "1002"


def test_with_two_calls_the_clicked_one_gets_the_panel(
    qtbot, window: MainWindow, fake_phone: FakePhone
) -> None:
    window.dial("1002")
    qtbot.waitUntil(lambda: window.calls.rowCount() == 1, timeout=3000)
    first = window.calls.calls()[0].key
    fake_phone.far_end_answers(first)
    wait_state(qtbot, window, CallState.CONNECTED)
    window.dial("1003")
    qtbot.waitUntil(lambda: window.calls.rowCount() == 2, timeout=3000)
    assert window.calls_view.isVisible()
    assert window.panel.view.remote == "1003"  # the newest call of ours
    window.choose_call(0)
    assert window.panel.view.key == first
    qtbot.mouseClick(window.panel.hangup, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.calls.rowCount() == 1, timeout=3000)
    assert ("hangup", first) in fake_phone.actions
    assert window.panel.view.remote == "1003"
    assert not window.calls_view.isVisible()


def test_attended_transfer_joins_our_two_calls(qtbot, window: MainWindow, fake_phone) -> None:
    window.dial("1002")
    qtbot.waitUntil(lambda: window.calls.rowCount() == 1, timeout=3000)
    first = window.calls.calls()[0].key
    fake_phone.far_end_answers(first)
    fake_phone._set(first, state=CallState.ON_HOLD, on_hold=True)
    window.dial("1003")
    qtbot.waitUntil(lambda: window.calls.rowCount() == 2, timeout=3000)
    second = window.calls.calls()[1].key
    fake_phone.far_end_answers(second)
    wait_state(qtbot, window, CallState.CONNECTED)
    window.ask_transfer_target(second)
    dialog = window.transfer_dialog
    assert dialog is not None and dialog.comboBoxItems() == ["1002 (the other call)"]
    dialog.setTextValue("1002 (the other call)")
    dialog.accept()
    qtbot.waitUntil(lambda: window.calls.rowCount() == 0, timeout=3000)
    assert ("attended", second, first) in fake_phone.actions
    assert not any(a[0] == "transfer" for a in fake_phone.actions)
