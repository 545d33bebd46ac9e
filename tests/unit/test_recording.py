"""Recording policy and lifecycle: policy table, on-demand by feature code and API, the index,
the CDR link, crash repair and retention. Fake clock, fake relay, a real store."""

from __future__ import annotations

import hashlib
import os
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from pbx.media.relay import Leg
from pbx.media.wavfile import WavWriter, read_frames
from pbx.recording import (
    RecordingManager,
    RecordingSettings,
    RecordingState,
    UnknownCall,
    apply_retention,
    policy_for,
    recording_path,
)
from pbx.store import Cdr, Disposition, RecordPolicy, Store
from tests.unit.media.test_recorder import DECODERS, RATE, event, rtp, stream, tone

DAY = 86400.0
WALL0 = 1_790_000_000.0  # 2026-09-21


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeRelay:
    tap: object = None
    closed: bool = False
    taps: list[object] = field(default_factory=list)

    def set_tap(self, tap: object) -> None:
        self.tap = tap
        self.taps.append(tap)


@dataclass
class FakeInvite:
    call_id: str


@dataclass
class FakeCall:
    label: str
    caller: str
    callee: str
    relay: FakeRelay | None
    a_invite: FakeInvite


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "deskpbx.db") as store:
        for number in ("1001", "1002", "1003"):
            store.add_extension(number, f"secret-{number}", now=WALL0)
        yield store


@pytest.fixture
def clock():
    return FakeClock()


def manager(store, tmp_path, clock, **kw) -> RecordingManager:
    return RecordingManager(store, tmp_path, clock=clock, wall=lambda: WALL0, decoders=DECODERS,
                            **kw)  # fmt: skip


def call(label="c1", caller="1001", callee="1002", call_id="abc@host") -> FakeCall:
    return FakeCall(label, caller, callee, FakeRelay(), FakeInvite(call_id))


def feed(mgr, fake_call, clock, packets, until: float) -> None:
    """Deliver packets through the tap in arrival order (times relative to clock start),
    ticking every 200 ms as the server's timer does."""
    base = clock.now
    pending = sorted(packets, key=lambda p: p.arrival)
    step = 0.2
    t = step
    while t <= until + 1e-9:
        while pending and pending[0].arrival <= t:
            p = pending.pop(0)
            if fake_call.relay.tap is not None:  # as the relay: no tap, no delivery
                fake_call.relay.tap(p.leg, p.data, base + p.arrival)
        clock.now = base + t
        mgr.tick()
        t = round(t + step, 6)


POLICIES = [
    ("never", "never", None, RecordPolicy.NEVER),
    ("always", "never", None, RecordPolicy.ALWAYS),
    ("never", "always", None, RecordPolicy.ALWAYS),
    ("on_demand", "never", None, RecordPolicy.ON_DEMAND),
    ("on_demand", "always", None, RecordPolicy.ALWAYS),
    ("never", "never", RecordPolicy.ON_DEMAND, RecordPolicy.ON_DEMAND),
    ("on_demand", "never", RecordPolicy.ALWAYS, RecordPolicy.ALWAYS),
]


@pytest.mark.parametrize(("caller", "callee", "route", "want"), POLICIES)
def test_the_strongest_policy_of_both_extensions_and_the_route_wins(
    store, caller, callee, route, want
):
    store.update_extension("1001", record_policy=caller)
    store.update_extension("1002", record_policy=callee)
    assert policy_for(store, "1001", "1002", route) is want


def test_unknown_numbers_count_as_never(store):
    assert policy_for(store, "+4930123", "1002") is RecordPolicy.NEVER


def test_recording_path_is_dated_and_safe(tmp_path):
    path = recording_path(tmp_path, "a/b c@x..y", WALL0)
    assert path.relative_to(tmp_path).parts[:3] == ("2026", "09", "21")
    assert path.name == "a_b_c@x..y.wav"


def test_a_custom_tap_installer_keeps_another_tap_in_front(store, tmp_path, clock):
    store.update_extension("1001", record_policy="always")
    seen = []

    def quality_tap(leg, data, arrival):
        seen.append(arrival)

    def install(c, tap):
        if tap is None:
            c.relay.set_tap(quality_tap)
        else:
            c.relay.set_tap(lambda *packet: (quality_tap(*packet), tap(*packet)))

    mgr = manager(store, tmp_path, clock, install_tap=install)
    c = call()
    mgr.on_call_answered(c)
    feed(mgr, c, clock, stream(Leg.A, tone(440, RATE), 0.0), until=1.0)
    path = mgr.on_call_ended(c)
    assert len(seen) == 50 and c.relay.tap is quality_tap
    assert read_frames(Path(path))[0][:, 0].any()


def test_a_never_call_gets_no_tap_and_no_row(store, tmp_path, clock):
    mgr = manager(store, tmp_path, clock)
    c = call()
    assert mgr.on_call_answered(c) is False
    assert c.relay.taps == [] and mgr.on_call_ended(c) is None
    assert store.list_recordings() == []


def test_always_records_indexes_and_links_the_whole_call(store, tmp_path, clock):
    store.update_extension("1002", record_policy="always")
    mgr = manager(store, tmp_path, clock)
    c = call()
    assert mgr.on_call_answered(c) is True
    assert mgr.state("c1") is RecordingState.RECORDING
    [row] = store.list_recordings()
    assert (row.call_id, row.caller, row.callee, row.complete) == ("abc@host", "1001", "1002",
                                                                   False)  # fmt: skip
    packets = stream(Leg.A, tone(440, 3 * RATE), 0.0) + stream(Leg.B, tone(1000, 3 * RATE), 0.0)
    feed(mgr, c, clock, packets, until=3.0)
    path = mgr.on_call_ended(c)
    assert path == row.path and c.relay.taps[-1] is None
    frames, _ = read_frames(Path(path))
    assert len(frames) == 3 * RATE
    assert frames[RATE:, 0].any() and frames[RATE:, 1].any()
    done = store.get_recording(row.id)
    assert done is not None and done.complete and not done.repaired
    assert done.duration == pytest.approx(3.0)
    assert done.size == os.path.getsize(path) == 44 + 4 * 3 * RATE
    assert done.sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert mgr.active == {}


def digit_packets(code_digits: str, at: float, leg=Leg.A, ts0=70_000) -> list:
    from tests.unit.media.test_recorder import Packet

    codes = {"*": 10, "#": 11, **{str(d): d for d in range(10)}}
    packets = []
    for n, digit in enumerate(code_digits):
        when = at + 0.3 * n
        for i in range(3):
            data = rtp(101, 5000 + 10 * n + i, ts0 + 800 * n, 77, event(codes[digit], True, 480))
            packets.append(Packet(leg, data, when + 0.02 * i, -1))
    return packets


def test_on_demand_records_from_the_feature_code_to_the_next(store, tmp_path, clock):
    store.update_extension("1001", record_policy="on_demand")
    mgr = manager(store, tmp_path, clock)
    c = call()
    assert mgr.on_call_answered(c) is True
    assert mgr.state("c1") is RecordingState.ARMED and store.list_recordings() == []
    audio = stream(Leg.B, tone(1000, 6 * RATE), 0.0, ssrc=9)
    # *1 at 1.0/1.3 s starts recording (at the '1'), *1 at 4.0/4.3 s pauses it
    packets = audio + digit_packets("*1", 1.0) + digit_packets("*1", 4.0, ts0=90_000)
    feed(mgr, c, clock, packets, until=6.0)
    assert len(store.list_recordings()) == 1
    path = mgr.on_call_ended(c)
    assert path is not None
    frames, _ = read_frames(Path(path))
    assert len(frames) == pytest.approx(3.0 * RATE, abs=2)  # 1.3 s .. 4.3 s
    assert frames[:, 1].any() and not frames[:, 0].any()


def test_digits_sent_by_sip_info_toggle_recording_too(store, tmp_path, clock):
    store.update_extension("1002", record_policy="on_demand")
    mgr = manager(store, tmp_path, clock)
    c = call()
    mgr.on_call_answered(c)
    mgr.on_info_digit("c1", Leg.B, "*")
    clock.now += 0.5
    mgr.on_info_digit("c1", Leg.B, "1")
    assert mgr.state("c1") is RecordingState.RECORDING
    clock.now += 2.0
    mgr.on_info_digit("c1", Leg.B, "*")
    mgr.on_info_digit("c1", Leg.B, "1")
    assert mgr.state("c1") is RecordingState.ARMED
    mgr.on_info_digit("nope", Leg.A, "*")  # unknown calls are ignored
    clock.now += 1.0
    path = mgr.on_call_ended(c)
    assert read_frames(Path(path))[0].shape == (2 * RATE, 2)


def test_a_wrong_or_slow_code_does_not_toggle(store, tmp_path, clock):
    store.update_extension("1001", record_policy="on_demand")
    mgr = manager(store, tmp_path, clock)
    c = call()
    mgr.on_call_answered(c)
    slow = digit_packets("*", 0.5) + digit_packets("1", 4.0, ts0=80_000)  # 3.5 s apart
    feed(mgr, c, clock, digit_packets("*2", 0.2, ts0=60_000) + slow, until=5.0)
    assert mgr.state("c1") is RecordingState.ARMED
    assert mgr.on_call_ended(c) is None and store.list_recordings() == []


def test_the_api_starts_and_stops_recording(store, tmp_path, clock):
    store.update_extension("1002", record_policy="on_demand")
    mgr = manager(store, tmp_path, clock)
    c = call()
    mgr.on_call_answered(c)
    row = mgr.start_recording("c1")
    assert row.call_label == "c1" and mgr.state("c1") is RecordingState.RECORDING
    feed(mgr, c, clock, stream(Leg.A, tone(440, 2 * RATE), 0.0), until=2.0)
    mgr.stop_recording("c1")
    assert mgr.state("c1") is RecordingState.ARMED
    clock.now += 1.0
    path = mgr.on_call_ended(c)
    assert read_frames(Path(path))[0].shape == (2 * RATE, 2)
    with pytest.raises(UnknownCall, match="no recordable call c1"):
        mgr.start_recording("c1")


def test_the_api_may_record_a_call_whose_policy_is_never(store, tmp_path, clock):
    finished_rows = []
    mgr = manager(store, tmp_path, clock, on_finished=lambda *a: finished_rows.append(a))
    c = call()
    assert mgr.on_call_answered(c) is False and c.relay.taps == []
    with pytest.raises(UnknownCall):
        mgr.stop_recording("c1")
    feed(mgr, c, clock, digit_packets("*1", 0.2), until=1.0)  # the code alone does nothing
    assert store.list_recordings() == []
    mgr.start_recording("c1")
    assert c.relay.tap is not None and mgr.state("c1") is RecordingState.RECORDING
    clock.now += 2.0
    path = mgr.on_call_ended(c)
    [(label, row)] = finished_rows
    assert label == "c1" and row.path == path and row.complete
    assert row.duration == pytest.approx(2.0)
    with pytest.raises(UnknownCall, match="no recordable call nope"):
        mgr.start_recording("nope")


def test_close_finishes_open_recordings(store, tmp_path, clock):
    store.update_extension("1001", record_policy="always")
    mgr = manager(store, tmp_path, clock)
    mgr.on_call_answered(call())
    clock.now += 1.5
    mgr.close()
    [row] = store.list_recordings()
    assert row.complete and row.duration == pytest.approx(1.5)


def test_under_a_loop_rows_are_finished_off_the_loop_and_aclose_waits(store, tmp_path, clock):
    import asyncio
    import threading

    store.update_extension("1001", record_policy="always")
    announced = []

    def on_finished(label, row):
        announced.append((label, row.complete, threading.current_thread()))

    async def scenario():
        mgr = manager(store, tmp_path, clock, on_finished=on_finished)
        mgr.start()
        assert mgr._timer is not None  # the 200 ms flush timer runs on this loop
        first, second = call("c1", call_id="one@h"), call("c2", call_id="two@h")
        mgr.on_call_answered(first)
        mgr.on_call_answered(second)
        feed(mgr, first, clock, stream(Leg.A, tone(440, RATE), 0.0), until=1.0)
        path = mgr.on_call_ended(first)
        await mgr.aclose()  # finishes c2 too, and waits for both rows
        assert mgr._timer is None
        return path

    path = asyncio.run(scenario())
    rows = {row.call_id: row for row in store.list_recordings()}
    assert rows["one@h"].path == path and rows["one@h"].complete
    assert rows["one@h"].sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert rows["two@h"].complete and rows["two@h"].duration == pytest.approx(1.0)
    assert sorted(a[:2] for a in announced) == [("c1", True), ("c2", True)]
    assert all(a[2] is threading.main_thread() for a in announced)  # callbacks on the loop


def test_disk_errors_never_fail_the_call(store, tmp_path, clock, monkeypatch):
    store.update_extension("1001", record_policy="always")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the recordings folder should be")
    mgr = RecordingManager(store, blocked, clock=clock, wall=lambda: WALL0, decoders=DECODERS)
    c = call()
    assert mgr.on_call_answered(c) is False  # cannot create the folder: no recording
    assert c.relay.tap is None and mgr.active == {} and mgr.on_call_ended(c) is None

    mgr = manager(store, tmp_path, clock)
    c = call("c2", call_id="two@h")
    assert mgr.on_call_answered(c) is True
    feed(mgr, c, clock, stream(Leg.A, tone(440, RATE), 0.0), until=1.0)
    recorder = mgr.active["c2"].recorder

    def disk_full(frames):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(recorder._writer, "append_bytes", disk_full)
    clock.now += 0.4
    mgr.tick()  # the flush fails: the recording ends with what was written
    assert "c2" not in mgr.active and c.relay.tap is None
    path = mgr.on_call_ended(c)
    assert path is not None and read_frames(Path(path))[0].shape == (round(0.8 * RATE), 2)
    [row] = store.recordings_of_call("two@h")
    assert not row.complete  # the disk stays full: finishing failed too, repair comes later
    [repaired] = mgr.startup_check()
    assert repaired.repaired and repaired.duration == pytest.approx(0.8)


def crashed_recording(store, tmp_path, frames: int, call_id="crash@x") -> Path:
    path = recording_path(tmp_path / "recordings", call_id, WALL0)
    writer = WavWriter(path)
    writer.append(np.ones((frames, 2), dtype=np.int16))
    with open(path, "ab") as file:
        file.write(np.full((400, 2), 7, dtype=np.int16).tobytes() + b"\x01")  # never counted
    store.add_recording(call_id, str(path), WALL0, caller="1001", callee="1002")
    return path


def test_startup_check_repairs_files_left_by_a_crash(store, tmp_path, clock):
    path = crashed_recording(store, tmp_path, 8000)
    gone = tmp_path / "recordings" / "lost.wav"
    store.add_recording("lost@x", str(gone), WALL0)
    repaired = manager(store, tmp_path, clock).start()
    by_path = {row.path: row for row in repaired}
    row = by_path[str(path)]
    assert row.complete and row.repaired and row.duration == pytest.approx(8400 / RATE)
    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with wave.open(str(path), "rb") as reader:
        assert reader.getnframes() == 8400
    lost = by_path[str(gone)]
    assert lost.complete and lost.repaired and lost.size == 0
    assert store.incomplete_recordings() == []


def finished(store, tmp_path, name: str, start: float, size: int) -> Path:
    path = tmp_path / "recordings" / f"{name}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    row = store.add_recording(name, str(path), start)
    store.finish_recording(row.id, duration=1.0, size=size, sha256="0" * 64)
    return path


def test_retention_by_age_deletes_old_files_rows_and_cdr_links(store, tmp_path):
    old = finished(store, tmp_path, "old", WALL0 - 40 * DAY, 100)
    new = finished(store, tmp_path, "new", WALL0 - 2 * DAY, 100)
    cdr = store.add_cdr(Cdr.from_times(call_id="old", caller="1001", callee="1002",
                        start=WALL0 - 40 * DAY, answer=None, end=WALL0 - 40 * DAY + 5,
                        disposition=Disposition.ANSWERED, recording=str(old)))  # fmt: skip
    deleted = apply_retention(store, WALL0, max_age_days=30, max_total_bytes=None)
    assert [row.call_id for row in deleted] == ["old"]
    assert not old.exists() and new.exists()
    assert [row.call_id for row in store.list_recordings()] == ["new"]
    assert store.get_cdr(cdr.id).recording is None


def test_retention_by_size_deletes_the_oldest_until_the_rest_fit(store, tmp_path):
    paths = [finished(store, tmp_path, f"r{i}", WALL0 - (10 - i) * DAY, 300) for i in range(5)]
    store.add_recording("open", str(tmp_path / "open.wav"), WALL0 - 20 * DAY)  # in progress
    deleted = apply_retention(store, WALL0, max_age_days=None, max_total_bytes=700)
    assert [row.call_id for row in deleted] == ["r0", "r1", "r2"]
    assert [p.exists() for p in paths] == [False, False, False, True, True]
    assert {row.call_id for row in store.list_recordings()} == {"r3", "r4", "open"}


def test_settings_from_the_config_extras():
    settings = RecordingSettings.from_extra(
        {"recording_retention_days": "30", "recording_max_bytes": "1000000"}
    )
    assert (settings.max_age_days, settings.max_total_bytes, settings.feature_code) == (
        30.0, 1_000_000, "*1")  # fmt: skip
    assert RecordingSettings.from_extra({}).max_age_days is None


def test_retention_runs_again_every_hour_of_ticks(store, tmp_path, clock):
    wall = [WALL0]
    week = RecordingSettings(max_age_days=7)
    mgr = RecordingManager(
        store, tmp_path, clock=clock, wall=lambda: wall[0], settings=week, decoders=DECODERS
    )
    mgr.start()
    aging = finished(store, tmp_path, "aging", WALL0 - 6.99 * DAY, 10)
    wall[0] += 3600
    clock.now += 3599
    mgr.tick()
    assert aging.exists()  # not an hour of ticks yet
    clock.now += 2
    mgr.tick()
    assert not aging.exists() and store.list_recordings() == []


def test_manager_start_applies_retention(store, tmp_path, clock):
    old = finished(store, tmp_path, "old", WALL0 - 40 * DAY, 10)
    manager(store, tmp_path, clock, settings=RecordingSettings(max_age_days=7)).start()
    assert not old.exists() and store.list_recordings() == []
