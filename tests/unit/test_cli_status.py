"""`deskpbx status` from the database: running or not (the heartbeat), phones, trunks,
bans and today's calls."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pbx.cli import main
from pbx.config import HEARTBEAT_SETTING
from pbx.store import Cdr, Disposition, HangupSide, Store
from pbx.store.trunks import Trunk, TrunkStatus


def run(tmp_path: Path, *argv: str) -> int:
    return main(["--data-dir", str(tmp_path), "status", *argv])


def _office(store: Store, beat_age: float | None) -> None:
    now = time.time()
    store.add_extension("201", "secret-201")
    store.add_extension("202", "secret-202")
    store.add_trunk(Trunk("carrier", "192.0.2.10"))
    store.set_trunk_status("carrier", TrunkStatus.UP, now)
    store.save_ban("192.0.2.66", now + 590, now)
    for call_id, disposition in (("a", Disposition.ANSWERED), ("b", Disposition.ANSWERED),
                                 ("c", Disposition.BUSY)):  # fmt: skip
        store.add_cdr(Cdr.from_times(call_id=call_id, caller="201", callee="202", start=now - 0.5,
                                     answer=None, end=now - 0.1, disposition=disposition,
                                     sip_code=200, sip_reason="OK",
                                     hangup_side=HangupSide.CALLER))  # fmt: skip
    if beat_age is not None:
        beat = {
            "pid": 4242,
            "since": now - 3600,
            "seen": now - beat_age,
            "version": "0.1.0",
            "sip": "UDP 0.0.0.0:5060, TCP 0.0.0.0:5060",
            "http": "127.0.0.1:8080",
        }
        store.set_setting(HEARTBEAT_SETTING, json.dumps(beat))


def test_a_running_pbx_and_its_office(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store.in_dir(tmp_path) as store:
        _office(store, beat_age=20.0)
    assert run(tmp_path) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("DeskPBX 0.1.0: running (pid 4242, since ")
    assert lines[0].endswith(
        "SIP on UDP 0.0.0.0:5060, TCP 0.0.0.0:5060; HTTP API on 127.0.0.1:8080"
    )
    assert lines[1:] == [
        "Extensions: 2, 0 with a registered phone (0 contacts)",
        "Trunks: carrier up",
        "Banned: 192.0.2.66 (9 min left)",
        "Calls today: 3 (2 ANSWERED, 1 BUSY)",
    ]
    assert run(tmp_path, "--json") == 0
    state = json.loads(capsys.readouterr().out)
    assert state["running"] is True and state["calls_today"] == {"ANSWERED": 2, "BUSY": 1}


def test_a_silent_heartbeat_means_a_pbx_that_did_not_stop_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store.in_dir(tmp_path) as store:
        _office(store, beat_age=600.0)
    assert run(tmp_path) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("DeskPBX: not running: its last sign of life (pid 4242) was ")
    assert first.endswith("and it did not stop cleanly")


def test_never_started(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path) == 0
    assert capsys.readouterr().out.splitlines() == [
        "DeskPBX: not running (start it with: deskpbx serve)",
        "Extensions: 0, 0 with a registered phone (0 contacts)",
        "Trunks: none",
        "Banned: nobody",
        "Calls today: 0",
    ]
