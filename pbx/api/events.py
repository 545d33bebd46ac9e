"""Call events and the bus that fans them out to webhooks and WebSocket clients.

The PBX publishes frozen events (named in the past tense of what happened to a
call); `EventBus.publish()` only hands each to subscribers that queue it
(`put_nowait` on bounded queues), so a slow CRM or a stalled WebSocket never
delays SIP handling: when a queue is full the event is dropped for that
subscriber and counted.

Where the PBX publishes (wired in pbx/b2bua.py by the lead; see `CallEventSource`):
  - `CallRinging`    when the callee's phone first rings (180, or 183 early media),
  - `CallAnswered`   when the callee answers (200 OK to the INVITE),
  - `CallEnded`      after the CDR is written (B2bua.on_call_ended),
  - `RecordingReady` when the recorder has closed a call's WAV file
                     (RecordingManager(on_finished=source.on_recording_finished)).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pbx.call import Call
    from pbx.store.recordings import Recording

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallRinging:
    type: ClassVar[str] = "call.ringing"
    call: str  # the B2BUA's call label
    call_id: str
    caller: str
    callee: str
    at: float  # epoch seconds
    x_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallAnswered:
    type: ClassVar[str] = "call.answered"
    call: str
    call_id: str
    caller: str
    callee: str
    at: float
    x_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A finished call with its CDR (`cdr` in the shape GET /api/v1/cdrs/{id} returns)."""

    type: ClassVar[str] = "call.ended"
    call: str
    call_id: str
    caller: str
    callee: str
    at: float
    cdr: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordingReady:
    """A call's WAV file is closed and indexed (pbx.store.recordings row `recording_id`).

    It may come just before the call's CallEnded: fetch the file through the CDR
    (GET /api/v1/cdrs/{id}/recording) once that has arrived."""

    type: ClassVar[str] = "recording.ready"
    call: str
    call_id: str
    recording_id: int
    path: str
    duration: float
    size: int
    sha256: str
    at: float


CallEvent = CallRinging | CallAnswered | CallEnded | RecordingReady


def event_to_json(event: CallEvent, sequence: int) -> dict[str, Any]:
    """The wire shape of an event: {"type", "sequence", "data"} (webhooks and WebSocket).

    A shallow copy of the fields: `dataclasses.asdict` deep-copies the CDR and cost
    50 times more on the call path (tests/bench/bench_api.py)."""
    data = {f.name: getattr(event, f.name) for f in fields(event)}
    return {"type": event.type, "sequence": sequence, "data": data}


Subscriber = Callable[[CallEvent, int], None]


class EventBus:
    """Synchronous fan-out; subscribers must not block (they queue and return)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self.sequence = 0
        self.published: dict[str, int] = {}

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add `subscriber(event, sequence)`; returns the function that removes it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: CallEvent) -> None:
        """Hand `event` to every subscriber; a failing subscriber is logged, never raised."""
        self.sequence += 1
        self.published[event.type] = self.published.get(event.type, 0) + 1
        for subscriber in list(self._subscribers):
            try:
                subscriber(event, self.sequence)
            except Exception:
                log.exception("event subscriber failed on %s", event.type)


class CallEventSource:
    """Turns B2BUA call objects into events: the hook the B2BUA calls.

    Call sites (pbx/b2bua.py):
      - `_on_provisional`, after `call.state` becomes RINGING or EARLY_MEDIA the first time:
        `self.on_call_state(call)`;
      - `_on_answer`, after `call.state = CallState.CONNECTED`: `self.on_call_state(call)`;
      - `_finish` already calls `self.on_call_ended(call)` after writing the CDR.
    `attach(b2bua, recordings)` sets `b2bua.on_call_ended` (chaining a previous one),
    `b2bua.on_call_state` when the B2BUA has that attribute, and the recording
    manager's `on_finished` (chained likewise) when there is one.
    """

    def __init__(self, bus: EventBus, wall: Callable[[], float]) -> None:
        self.bus = bus
        self.wall = wall
        self._rung: set[str] = set()

    def attach(self, b2bua: Any, recordings: Any = None) -> None:
        if recordings is not None and hasattr(recordings, "on_finished"):
            finished = recordings.on_finished

            def recorded(label: str, recording: Recording) -> None:
                if finished is not None:
                    finished(label, recording)
                self.on_recording_finished(label, recording)

            recordings.on_finished = recorded
        previous = getattr(b2bua, "on_call_ended", None)

        def ended(call: Call) -> None:
            if previous is not None:
                previous(call)
            self.on_call_ended(call)

        b2bua.on_call_ended = ended
        if hasattr(b2bua, "on_call_state"):
            b2bua.on_call_state = self.on_call_state

    def on_call_state(self, call: Call) -> None:
        state = getattr(call.state, "value", call.state)
        common = dict(
            call=call.label, call_id=call.a_invite.call_id, caller=call.caller,
            callee=call.callee, at=self.wall(), x_headers=dict(call.x_headers),
        )  # fmt: skip
        if state in ("ringing", "early_media") and call.label not in self._rung:
            self._rung.add(call.label)
            self.bus.publish(CallRinging(**common))  # type: ignore[arg-type]
        elif state == "connected":
            self._rung.discard(call.label)
            if call.answer is not None:  # the CDR's answer time, so the two agree
                common["at"] = call.answer
            self.bus.publish(CallAnswered(**common))  # type: ignore[arg-type]

    def on_recording_finished(self, label: str, recording: Recording) -> None:
        """Hook for `RecordingManager(on_finished=...)` (pbx.recording)."""
        self.bus.publish(
            RecordingReady(
                call=label,
                call_id=recording.call_id,
                recording_id=recording.id,
                path=recording.path,
                duration=recording.duration,
                size=recording.size,
                sha256=recording.sha256,
                at=self.wall(),
            )
        )

    def on_call_ended(self, call: Call) -> None:
        self._rung.discard(call.label)
        cdr = call.to_cdr()  # carries the stored row's id (B2bua._finish sets call.cdr_id)
        self.bus.publish(
            CallEnded(
                call=call.label,
                call_id=cdr.call_id,
                caller=cdr.caller,
                callee=cdr.callee,
                at=cdr.end,
                cdr=cdr.to_public_dict(),
            )
        )
