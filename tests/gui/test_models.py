"""Item models, the UA adapter and the command line, without a PBX."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from app.main import dial_target
from app.models import (
    DirectoryEntry,
    DirectoryModel,
    HistoryModel,
    format_duration,
    history_entry,
)
from app.phone import CallDirection, CallUpdated, Notice, RegistrationUpdated
from app.phone import CallState as ViewState
from app.phone import RegistrationState as ViewRegistration
from app.qt import Qt
from app.ua_phone import UaPhone, short_remote
from pbx.store import Cdr, Disposition
from pbx.ua.events import (
    CallState,
    CallStateChanged,
    IncomingCall,
    RegistrationChanged,
    RegistrationState,
    TransferProgress,
)


def cdr(caller: str, callee: str, disposition: Disposition, billsec: float = 0.0) -> Cdr:
    return Cdr(call_id="x", caller=caller, callee=callee, start=1_700_000_000.0,
               end=1_700_000_100.0, disposition=disposition, billsec=billsec)  # fmt: skip


def test_history_entries_from_the_softphones_side() -> None:
    out = history_entry(cdr("1000", "1002", Disposition.ANSWERED, 75.4), "1000")
    assert (out.direction, out.number, out.result, out.duration) == (
        CallDirection.OUTGOING, "1002", "Answered", 75.4)  # fmt: skip
    missed = history_entry(cdr("1003", "1000", Disposition.NO_ANSWER), "1000")
    assert (missed.direction, missed.number, missed.result) == (
        CallDirection.INCOMING, "1003", "Missed")  # fmt: skip
    busy = history_entry(cdr("1000", "1004", Disposition.BUSY), "1000")
    assert busy.result == "Busy"


def test_history_model_shows_columns(qtmodeltester) -> None:
    model = HistoryModel()
    model.set_cdrs([cdr("1000", "1002", Disposition.ANSWERED, 3725),
                    cdr("1005", "1000", Disposition.CANCELLED)], "1000")  # fmt: skip
    qtmodeltester.check(model)
    shown = [[model.index(r, c).data() for c in range(1, 5)] for r in range(2)]
    assert shown == [["→", "1002", "1:02:05", "Answered"], ["←", "1005", "0:00", "Missed"]]
    header = model.headerData(2, Qt.Orientation.Horizontal)
    assert header == "Number"


def test_directory_model_presence(qtmodeltester) -> None:
    model = DirectoryModel()
    rows = [
        DirectoryEntry("1001", "Reception", 0),
        DirectoryEntry("1002", "Kitchen", 1),
        DirectoryEntry("1003", "Lab", 2),
        DirectoryEntry("1004", "Old", 0, False),
    ]
    model.set_rows(rows)
    qtmodeltester.check(model)
    assert [model.index(r, 2).data() for r in range(4)] == [
        "Offline", "Online", "Online (2 devices)", "Disabled"]  # fmt: skip


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 59.9, 61, 3600)] == ["0:00", "0:59", "1:01", "1:00:00"]


@pytest.mark.parametrize(
    ("argument", "target"),
    [("sip:1002", "sip:1002"), ("tel:+15551234", "+15551234"),
     ("tel:+1-555-1234;phone-context=x", "+1-555-1234"), ("1002", "1002"), (None, None),
     ("sips:bob@example.com", "sips:bob@example.com")],
)  # fmt: skip
def test_dial_target_from_the_command_line(argument, target) -> None:
    assert dial_target(argument) == target


@pytest.mark.parametrize(
    ("uri", "shown"),
    [("sip:1002@127.0.0.1", "1002"), ("sip:1002@127.0.0.1:5070;transport=udp", "1002"),
     ("sip:bob@example.com", "bob@example.com"), ("tel:+15551234", "+15551234")],
)  # fmt: skip
def test_short_remote(uri: str, shown: str) -> None:
    assert short_remote(uri, "127.0.0.1") == shown


@dataclass(eq=False)
class FakeCall:
    """The attributes of pbx.ua.Call that the adapter reads, and its verbs."""

    remote_uri: str = "sip:1002@127.0.0.1"
    direction: str = "incoming"
    state: CallState = CallState.RINGING
    display_name: str = "Kitchen"
    local_hold: bool = False
    remote_hold: bool = False
    muted: bool = False
    duration: float = 0.0
    did: list = field(default_factory=list)

    async def answer(self) -> None:
        self.did.append("answer")

    async def attended_transfer(self, other: FakeCall) -> int:
        self.did.append(f"attended to {other.remote_uri}")
        return 202

    async def reject(self, status: int = 486) -> None:
        self.did.append(f"reject {status}")

    def mute(self, on: bool) -> None:
        self.muted = on


async def test_ua_events_become_gui_values() -> None:
    published: list[object] = []
    phone = UaPhone(published.append, "127.0.0.1", who="extension 1000", clock=lambda: 500.0)
    phone.on_event(RegistrationChanged(RegistrationState.REGISTERED, 200, "OK", 300))
    phone.on_event(RegistrationChanged(RegistrationState.FAILED, 403, "Forbidden"))
    assert published[:2] == [
        RegistrationUpdated(ViewRegistration.REGISTERED, "extension 1000"),
        RegistrationUpdated(ViewRegistration.FAILED, "403 Forbidden"),
    ]
    call = FakeCall()
    phone.on_event(IncomingCall(call, call.remote_uri, "Kitchen"))  # type: ignore[arg-type]
    ringing = published[2]
    assert isinstance(ringing, CallUpdated)
    assert ringing.view.ringing_in and ringing.view.remote == "1002"
    key = ringing.view.key
    await phone.answer(key)
    assert call.did == ["answer"]
    call.state, call.duration = CallState.CONNECTED, 12.0
    phone.on_event(CallStateChanged(call, CallState.RINGING, CallState.CONNECTED, 200, "OK"))  # type: ignore[arg-type]
    connected = published[3].view
    assert (connected.state, connected.answered_at) == (ViewState.CONNECTED, 488.0)
    await phone.set_muted(key, True)
    assert call.muted and published[4].view.muted
    phone.on_event(TransferProgress(call, 200, "OK"))  # type: ignore[arg-type]
    assert published[5] == Notice("Transfer: 200 done")
    call.state = CallState.ENDED
    phone.on_event(CallStateChanged(call, CallState.CONNECTED, CallState.ENDED, 486, "Busy Here"))  # type: ignore[arg-type]
    ended = published[6].view
    assert (ended.state, ended.reason, ended.live) == (ViewState.ENDED, "486 Busy Here", False)
    with pytest.raises(LookupError, match="has ended"):
        await phone.hangup(key)


async def test_attended_transfer_refers_one_call_to_the_other() -> None:
    phone = UaPhone(lambda event: None, "127.0.0.1")
    held, live = FakeCall(remote_uri="sip:1002@127.0.0.1"), FakeCall(remote_uri="sip:1003@x")
    await phone.attended_transfer(phone.key_of(live), phone.key_of(held))
    assert live.did == ["attended to sip:1002@127.0.0.1"] and held.did == []


def test_an_adapter_failure_never_reaches_the_ua() -> None:
    def broken(event: object) -> None:
        raise RuntimeError("GUI gone")

    phone = UaPhone(broken, "127.0.0.1")
    phone.on_event(RegistrationChanged(RegistrationState.REGISTERED, 200, "OK", 300))  # no raise
