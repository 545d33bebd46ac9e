"""Call recording policy and lifecycle: which calls are recorded, where, and for how long.

`RecordingManager` is the one object the PBX composition (pbx.server) and the
B2BUA talk to; it owns a `pbx.media.recorder.Recorder` per recorded call.

- Policy: an extension's `record_policy` (always / never / on_demand) on
  either side of a call applies, and so does a route's (passed in by the
  B2BUA once routes exist); the strongest wins: always > on_demand > never,
  as in FreePBX, where "force" on either party records the call.
- On demand: the recorder is attached from the answer on but writes nothing
  until a leg sends the feature code (`*1` by default, as RFC 4733
  telephone-events the recorder sees through the relay tap) or the HTTP API
  calls `start_recording(label)`; the same code or `stop_recording(label)`
  pauses it. Paused stretches are left out of the file. The API may also
  record a call whose policy is never (an administrator's override); the
  feature code may not.
- Files: `<data dir>/recordings/YYYY/MM/DD/<call-id>.wav` (local date of the
  answer), indexed in the store when recording starts and finished (duration,
  size, SHA-256) when the call ends; the CDR links the path.
- Crash safety: `startup_check()` repairs the header of every file whose row
  was never finished and marks the row repaired.
- Retention: `apply_retention()` deletes the oldest finished recordings past
  an age or beyond a total size; the manager runs it at start and hourly.

Nothing here runs per packet: `tick()` flushes every recorder on a timer
(`FLUSH_INTERVAL`), on the PBX loop, all of them in one batch. Times: `clock()` is the relay's
monotonic clock (the tap's arrival times), `wall()` epoch seconds for rows.

Wiring (the composition root and the B2BUA call these; none of them raises):

- `Pbx.start`: `RecordingManager(store, data_dir, clock=loop.time, wall=...,
  settings=RecordingSettings.from_extra(config.extra))`, then `.start()`
  (startup check, retention, flush timer); `Pbx.aclose`: `await .aclose()`
  after the B2BUA has ended its calls.
- `B2bua._on_answer`, once the call is connected: `on_call_answered(call)`.
- `B2bua._finish`, before the CDR is stored: the CDR's `recording` column is
  `on_call_ended(call)` (the file's path, or None).
- The HTTP API: `start_recording(label)` / `stop_recording(label)`
  (`UnknownCall` is a LookupError: 404); INFO DTMF: `on_info_digit(...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pbx.media.recorder import Decoder, DigitReceived, Recorder
from pbx.media.recorder_batch import flush_recorders
from pbx.media.relay import Leg, Tap
from pbx.media.wavfile import repair, sync_file
from pbx.store import RecordPolicy, Store, StoreError
from pbx.store.recordings import Recording

log = logging.getLogger(__name__)

# Every flush costs each recorded call a fixed amount (its share of the batch decode, a
# write, a header rewrite), so flushing twice a second instead of five times keeps a
# recorded call's CPU close to an unrecorded one's. A crash then loses at most this plus
# the recorder's reorder window (0.2 s): under the "about a second" the format promises.
FLUSH_INTERVAL = 0.5
WRITE_EVERY = 0.0  # > 0: append less often, losing that much more audio in a crash
RETENTION_INTERVAL = 3600.0
FEATURE_CODE = "*1"
DIGIT_TIMEOUT = 3.0
_RANK = {RecordPolicy.NEVER: 0, RecordPolicy.ON_DEMAND: 1, RecordPolicy.ALWAYS: 2}
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")


class UnknownCall(LookupError):
    """start/stop_recording named a call that is not up or not being recorded."""


class RecordingState(enum.Enum):
    ARMED = "armed"  # on demand, not recording yet (or paused)
    RECORDING = "recording"


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    """Where recordings go and how long they stay. None means no limit."""

    max_age_days: float | None = None
    max_total_bytes: int | None = None
    feature_code: str = FEATURE_CODE

    @classmethod
    def from_extra(cls, extra: Mapping[str, str]) -> RecordingSettings:
        """From PbxConfig.extra: recording_retention_days, recording_max_bytes,
        recording_feature_code (all optional)."""
        days = extra.get("recording_retention_days")
        size = extra.get("recording_max_bytes")
        return cls(
            max_age_days=float(days) if days else None,
            max_total_bytes=int(size) if size else None,
            feature_code=extra.get("recording_feature_code", FEATURE_CODE),
        )


class RecordableCall(Protocol):
    """What the manager reads of a `pbx.call.Call` (kept narrow so tests can fake it)."""

    label: str
    caller: str
    callee: str

    @property
    def relay(self) -> Any: ...

    @property
    def a_invite(self) -> Any: ...


def _set_tap(call: RecordableCall, tap: Tap | None) -> None:
    call.relay.set_tap(tap)


def policy_for(store: Store, caller: str, callee: str, route: RecordPolicy | None = None) -> (
    RecordPolicy
):  # fmt: skip
    """The strongest policy among the caller's and callee's extensions and the route's."""
    found = [route] if route is not None else []
    for number in (caller, callee):
        extension = store.find_extension(number)
        if extension is not None:
            found.append(extension.record_policy)
    return max(found, key=_RANK.__getitem__, default=RecordPolicy.NEVER)


def recording_path(root: Path, call_id: str, started: float) -> Path:
    """root/YYYY/MM/DD/<call-id>.wav; a Call-ID's unsafe characters become '_'."""
    day = datetime.fromtimestamp(started)
    name = _UNSAFE.sub("_", call_id)[:120] or "call"
    return root / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}" / f"{name}.wav"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(slots=True)
class _Active:
    """A call with a recorder attached: its index row (once recording began) and digits."""

    call: RecordableCall
    recorder: Recorder
    started_wall: float
    row: Recording | None = None
    digits: dict[Leg, tuple[str, float]] = field(default_factory=dict)


class RecordingManager:
    """Records calls by policy; see the module docstring for the hooks and their call sites."""

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float] = time.time,
        settings: RecordingSettings | None = None,
        decoders: dict[int, Decoder] | None = None,
        on_finished: Callable[[str, Recording], None] | None = None,
        install_tap: Callable[[RecordableCall, Tap | None], None] | None = None,
    ) -> None:
        self.store = store
        self.root = Path(data_dir) / "recordings"
        self.clock = clock
        self.wall = wall
        self.settings = settings or RecordingSettings()
        self.decoders = decoders  # None: G.711 from pbx.media.g711
        self.active: dict[str, _Active] = {}
        self._idle: dict[str, RecordableCall] = {}  # answered, policy never, no recorder
        self._stopped: dict[str, str | None] = {}  # recording ended early by a disk error
        self.on_finished = on_finished
        self._pending: set[asyncio.Future[Recording]] = set()
        #: Puts the recorder's tap (None: removes it) on the call's relay session. The
        #: default owns the session's tap slot; a session opened with quality=True keeps
        #: its call-quality monitor in front of it by itself (pbx.media.relay).
        self.install_tap = install_tap or _set_tap
        self._timer: asyncio.TimerHandle | None = None
        self._next_retention = 0.0

    # ---- lifecycle (server.py) ---------------------------------------------------

    def start(self) -> list[Recording]:
        """Startup check and retention, then the flush timer if a loop runs; the repaired rows."""
        repaired = self.startup_check()
        self.apply_retention()
        self._next_retention = self.clock() + RETENTION_INTERVAL
        with contextlib.suppress(RuntimeError):  # no running loop: the owner calls tick()
            self._arm(asyncio.get_running_loop())
        return repaired

    def close(self) -> None:
        """Stop the timer and finish any recording still open (the PBX is stopping); under a
        running loop their rows are finished in a thread: `aclose()` waits for that."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._idle.clear()
        for label in list(self.active):
            self._finish(self.active.pop(label))

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(FLUSH_INTERVAL, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.tick()
        except Exception:  # a disk error must not stop the timer for the other calls
            log.exception("recording flush failed")
        self._arm(loop)

    def tick(self, now: float | None = None) -> None:
        """Flush every recorder; hourly, apply retention."""
        now = self.clock() if now is None else now
        # every call's steady-state packets in one vectorised pass (pbx.media.recorder)
        failed = flush_recorders([active.recorder for active in self.active.values()], now)
        for label, active in list(self.active.items()):
            exc = failed.get(active.recorder)
            if exc is not None:  # disk full or gone: keep what was written
                log.error("[%s] recording stopped: %s", label, exc)
                del self.active[label]
                try:
                    self._stopped[label] = self._finish(active)
                except (OSError, StoreError):  # the next start repairs the row
                    self._stopped[label] = str(active.recorder.path)
        if now >= self._next_retention:
            self._next_retention = now + RETENTION_INTERVAL
            self.apply_retention()

    # ---- hooks for the B2BUA -------------------------------------------------------

    def on_call_answered(self, call: RecordableCall, route: RecordPolicy | None = None) -> bool:
        """Attach a recorder per policy when a call is answered; True if one is attached.

        A call under policy never is only remembered, so the API can still record it.
        """
        policy = policy_for(self.store, call.caller, call.callee, route)
        if call.relay is None or call.label in self.active:
            return False
        if policy is RecordPolicy.NEVER:
            self._idle[call.label] = call
            return False
        try:
            active = self._attach(call)
            if policy is RecordPolicy.ALWAYS:
                self._begin(active)
        except (OSError, StoreError) as exc:  # a full disk must not fail the call
            log.error("[%s] cannot record: %s", call.label, exc)
            self._drop(call.label)
            return False
        log.info("[%s] recording policy %s", call.label, policy.value)
        return True

    def on_call_ended(self, call: RecordableCall) -> str | None:
        """Finish the call's recording; the path for the CDR's `recording` column, or None."""
        self._idle.pop(call.label, None)
        active = self.active.pop(call.label, None)
        if active is None:
            return self._stopped.pop(call.label, None)
        try:
            return self._finish(active)
        except (OSError, StoreError) as exc:  # the CDR is still written, without the link
            log.error("[%s] could not finish the recording: %s", call.label, exc)
            return None

    def _drop(self, label: str) -> None:
        active = self.active.pop(label, None)
        if active is not None:
            self._detach(active)
            active.recorder.close(self.clock(), sync=False)

    def _attach(self, call: RecordableCall) -> _Active:
        started = self.wall()
        path = recording_path(self.root, call.a_invite.call_id, started)
        if path.exists():  # the same Call-ID recorded the same day (a re-used Call-ID)
            path = path.with_name(f"{path.stem}-{int(started * 1000)}.wav")
        label = call.label
        recorder = Recorder(
            path,
            on_digit=lambda event: self._on_digit(label, event),
            decoders=self.decoders,
            write_every=WRITE_EVERY,
        )
        active = self.active[label] = _Active(call, recorder, started)
        self.install_tap(call, recorder.tap)
        return active

    # ---- on demand (feature code and the HTTP API) ----------------------------------

    def start_recording(self, call_label: str) -> Recording:
        """Start or resume recording an answered call, whatever its policy (the API's override)."""
        idle = self._idle.pop(call_label, None)
        if idle is not None and idle.relay is not None and not idle.relay.closed:
            self._attach(idle)
        active = self._get(call_label)
        self._begin(active)
        assert active.row is not None
        return active.row

    def stop_recording(self, call_label: str) -> None:
        """Pause recording a call; the file stays open until the call ends."""
        self._get(call_label).recorder.stop(self.clock())

    def state(self, call_label: str) -> RecordingState:
        recording = self._get(call_label).recorder.recording
        return RecordingState.RECORDING if recording else RecordingState.ARMED

    def _get(self, call_label: str) -> _Active:
        active = self.active.get(call_label)
        if active is None:
            raise UnknownCall(f"no recordable call {call_label}")
        return active

    def _begin(self, active: _Active, at: float | None = None) -> None:
        recorder = active.recorder
        recorder.start(self.clock() if at is None else at)
        if active.row is None:
            call = active.call
            active.row = self.store.add_recording(
                call.a_invite.call_id, str(recorder.path), active.started_wall,
                call_label=call.label, caller=call.caller, callee=call.callee,
            )  # fmt: skip

    def on_info_digit(self, call_label: str, leg: Leg, digit: str) -> None:
        """A digit a phone sent by SIP INFO (application/dtmf-relay) instead of RFC 4733:
        the B2BUA passes it here so the feature code works for those phones too."""
        if call_label in self.active:
            self._on_digit(call_label, DigitReceived(leg, digit, self.clock()))

    def _on_digit(self, label: str, event: DigitReceived) -> None:
        """Match the feature code in each leg's digits; toggle recording at the code's arrival."""
        active = self.active.get(label)
        if active is None:
            return
        typed, last = active.digits.get(event.leg, ("", event.at))
        typed = (typed if event.at - last <= DIGIT_TIMEOUT else "") + event.digit
        code = self.settings.feature_code
        if typed.endswith(code):
            typed = ""
            if active.recorder.recording:
                active.recorder.stop(event.at)
                log.info("[%s] recording paused by feature code", label)
            else:
                self._begin(active, event.at)
                log.info("[%s] recording started by feature code", label)
        active.digits[event.leg] = (typed[-len(code) :], event.at)

    def _detach(self, active: _Active) -> None:
        relay = active.call.relay
        if relay is not None and not relay.closed:
            self.install_tap(active.call, None)

    def _finish(self, active: _Active) -> str | None:
        """Close the file now; fsync, hash and finish the row in a worker thread when a loop
        runs (an hour of audio is 57 MB: hashing it on the loop would stall every call)."""
        self._detach(active)
        recorder = active.recorder
        recorder.close(self.clock(), sync=False)
        if active.row is None:
            return None
        label, row_id, path = active.call.label, active.row.id, recorder.path
        log.info("[%s] recording %s: %.1f s", label, path, recorder.duration)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._announce(label, self._seal(row_id, path, recorder.duration))
            return str(path)
        future = loop.run_in_executor(None, self._seal, row_id, path, recorder.duration)
        self._pending.add(future)
        future.add_done_callback(lambda done: self._sealed(label, done))
        return str(path)

    def _seal(self, row_id: int, path: Path, duration: float) -> Recording:
        sync_file(path)
        size = path.stat().st_size
        return self.store.finish_recording(
            row_id, duration=duration, size=size, sha256=sha256_of(path)
        )

    def _sealed(self, label: str, done: asyncio.Future[Recording]) -> None:
        self._pending.discard(done)
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:  # the row stays incomplete; the next start repairs it
            log.error("[%s] could not finish the recording: %s", label, error)
            return
        self._announce(label, done.result())

    def _announce(self, label: str, row: Recording) -> None:
        if self.on_finished is not None:
            self.on_finished(label, row)

    async def aclose(self) -> None:
        """close(), then wait until every finished recording is synced, hashed and indexed."""
        self.close()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # ---- crash repair and retention ------------------------------------------------

    def startup_check(self) -> list[Recording]:
        """Repair files whose rows were never finished (a crash); the finished rows."""
        return repair_incomplete(self.store)

    def apply_retention(self) -> list[Recording]:
        return apply_retention(
            self.store, self.wall(), self.settings.max_age_days, self.settings.max_total_bytes
        )


def repair_incomplete(store: Store) -> list[Recording]:
    """Rewrite the header of each unfinished recording from its file length and finish the row.

    A missing file is finished with size 0, so the row shows the loss instead of
    pretending a recording is in progress.
    """
    done = []
    for row in store.incomplete_recordings():
        path = Path(row.path)
        if path.exists():
            info = repair(path)
            done.append(store.finish_recording(
                row.id, duration=info.duration, size=path.stat().st_size,
                sha256=sha256_of(path), repaired=True,
            ))  # fmt: skip
            log.warning("repaired recording %s after a crash (%.1f s)", path, info.duration)
        else:
            done.append(store.finish_recording(row.id, duration=0, size=0, sha256="",
                                               repaired=True))  # fmt: skip
            log.warning("recording %s was lost in a crash", path)
    return done


def apply_retention(
    store: Store, now: float, max_age_days: float | None, max_total_bytes: int | None
) -> list[Recording]:
    """Delete the oldest finished recordings older than `max_age_days` or, oldest first,
    until the rest fit in `max_total_bytes`; the deleted rows."""
    rows = store.complete_recordings_oldest_first()
    total = sum(row.size for row in rows)
    deleted = []
    for row in rows:
        too_old = max_age_days is not None and row.start < now - max_age_days * 86400
        too_big = max_total_bytes is not None and total > max_total_bytes
        if not (too_old or too_big):
            break
        with contextlib.suppress(FileNotFoundError):
            Path(row.path).unlink()
        store.delete_recording(row.id)
        total -= row.size
        deleted.append(row)
    if deleted:
        log.info("retention deleted %d recordings", len(deleted))
    return deleted
