"""What every SIP transaction shares: states, inputs, actions, keys, the table runner.

Theory of operation (RFC 3261 section 17, RFC 6026)
---------------------------------------------------
A transaction is a small machine in the h11 style. Its class holds a table

    TRANSITIONS[(State, Input)] -> (steps, next_state)

and `handle(input, now, message)` looks the pair up, runs the steps (small
functions that append `Action`s and arm/cancel timers) and moves to
`next_state`. Nothing does I/O: the caller (pbx.sip.core.SipCore) carries out
the actions: it sends `Transmit`ted messages, turns `PassUp` into events for
the transaction user (TU), and keeps every `ArmTimer` deadline in one heap.

A pair missing from the table means one of two things:
- a *local* input (the TU sending a response, cancelling) that the state
  cannot take: our own misuse, `LocalProtocolError`;
- a *remote* input (a retransmitted request or response, a late ACK) or a
  timer racing a state change: absorbed, no actions (17.1.1.2, 17.2.1 say
  which messages are absorbed; anything unexpected from the wire is too).

The four machines live in transaction_client.py (17.1.1, 17.1.2) and
transaction_server.py (17.2.1, 17.2.2). Matching (17.1.3, 17.2.3) is done
with the keys defined here; the table of live transactions is the core's.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from pbx.sip.errors import LocalProtocolError, ParseError
from pbx.sip.message import Headers, Request, Response
from pbx.sip.timers import TimerConfig, TimerName

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 8.1.1.7: a branch starting with this was built by an RFC 3261 element."""


class State(enum.Enum):
    """The states of the four transaction machines (RFC 3261 figures 5-8, RFC 6026)."""

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"

    __hash__ = object.__hash__  # members are singletons; skips Enum's Python-level hash


class Input(enum.Enum):
    """What can happen to a transaction: from the wire, from the TU, from a timer."""

    # from the wire
    REQUEST = "request retransmission"
    ACK = "ACK"
    RECV_1XX = "1xx received"
    RECV_2XX = "2xx received"
    RECV_FAILURE = "300-699 received"
    TRANSPORT_ERROR = "transport error"
    # from the transaction user
    SEND_1XX = "TU sends 1xx"
    SEND_2XX = "TU sends 2xx"
    SEND_FAILURE = "TU sends 300-699"
    CANCEL = "TU cancels"
    # timers
    TIMER_A = TimerName.A
    TIMER_B = TimerName.B
    TIMER_D = TimerName.D
    TIMER_E = TimerName.E
    TIMER_F = TimerName.F
    TIMER_G = TimerName.G
    TIMER_H = TimerName.H
    TIMER_I = TimerName.I
    TIMER_J = TimerName.J
    TIMER_K = TimerName.K
    TIMER_L = TimerName.L
    TIMER_M = TimerName.M
    TIMER_CANCEL_GUARD = TimerName.CANCEL_GUARD

    __hash__ = object.__hash__


_TIMER_INPUTS: dict[TimerName, Input] = {
    member.value: member for member in Input if isinstance(member.value, TimerName)
}

LOCAL_INPUTS = frozenset({Input.SEND_1XX, Input.SEND_2XX, Input.SEND_FAILURE, Input.CANCEL})
"""Inputs only our own code produces; one a state cannot take is a LocalProtocolError."""


def timer_input(name: TimerName) -> Input:
    """The input a timer produces when it fires (a dict lookup: Input(name) goes through
    the enum's value lookup, on every Timer J of every transaction)."""
    return _TIMER_INPUTS[name]


def received_input(status: int) -> Input:
    """The input a received response of `status` produces (17.1.1.2, 17.1.2.2)."""
    return _STATUS_CLASS[_status_class(status)][0]


def sent_input(status: int) -> Input:
    """The input the TU produces by sending a response of `status` (17.2.1, 17.2.2)."""
    return _STATUS_CLASS[_status_class(status)][1]


def _status_class(status: int) -> int:
    if not 100 <= status <= 699:
        raise LocalProtocolError(f"status {status} is outside 100-699")
    return min(status // 100, 3)


_STATUS_CLASS = {
    1: (Input.RECV_1XX, Input.SEND_1XX),
    2: (Input.RECV_2XX, Input.SEND_2XX),
    3: (Input.RECV_FAILURE, Input.SEND_FAILURE),
}


# ---------------------------------------------------------------- actions


NO_TAGS: frozenset[str | None] = frozenset()


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send `message` to the transaction's peer (a retransmission is just another one).

    Bytes are a message already serialized: what a finished non-INVITE server transaction
    keeps of its final response (pbx.sip.transaction_server.send_final)."""

    message: Request | Response | bytes


@dataclass(frozen=True, slots=True)
class PassUp:
    """Give `message` to the transaction user."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class ArmTimer:
    """Timer `name` now fires at `deadline` (monotonic seconds); replaces an earlier arming."""

    name: TimerName
    deadline: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Kept for callers that name it; the machines no longer emit it: a timer is cancelled by
    leaving `Transaction.timers`, and the core's heap skips an entry whose transaction no
    longer holds that deadline (lazy cancellation), so the action had nothing to do."""

    name: TimerName


@dataclass(frozen=True, slots=True)
class ReportTimeout:
    """Timer B, F, H or the cancel guard fired: tell the TU (17.1.1.2, 17.1.2.2, 17.2.1)."""

    timer: TimerName


@dataclass(frozen=True, slots=True)
class ReportTransportError:
    """The transport could not send for this transaction (17.1.4, 17.2.4)."""


@dataclass(frozen=True, slots=True)
class SendCancel:
    """Send a CANCEL for this INVITE now (RFC 3261 9.1: only once a 1xx has arrived)."""


@dataclass(frozen=True, slots=True)
class OfferTrying:
    """A new INVITE wants a 100 Trying unless the TU answers it first (17.2.1): the core
    sends it at its next pop_outgoing() if no response has gone out by then."""


@dataclass(frozen=True, slots=True)
class Terminate:
    """The transaction reached Terminated and must be destroyed now."""


TERMINATE = Terminate()
REPORT_TRANSPORT_ERROR = ReportTransportError()
SEND_CANCEL = SendCancel()
"""The field-less actions: immutable, so one instance of each serves every transaction."""

Action = (
    Transmit
    | PassUp
    | ArmTimer
    | CancelTimer
    | ReportTimeout
    | ReportTransportError
    | SendCancel
    | OfferTrying
    | Terminate
)


# ---------------------------------------------------------------- keys


# Keys are named tuples, not frozen dataclasses: each message builds one or two and hashes
# them several times (the transaction table, the timer heap's liveness checks, the TU's own
# tables), and a tuple's hash and equality run in C where a dataclass's run Python code.
# The three kinds have different lengths, so no key of one kind equals a key of another.


class ClientKey(NamedTuple):
    """17.1.3: a response matches on the top Via branch and the CSeq method."""

    branch: str
    method: str


class ServerKey(NamedTuple):
    """17.2.3: branch, sent-by of the top Via, and method (ACK counts as INVITE)."""

    branch: str
    sent_by: tuple[str, int]
    method: str


class LegacyServerKey(NamedTuple):
    """17.2.3 fallback for RFC 2543 peers (no magic cookie in the branch).

    An ACK carries the To tag of our response while the INVITE it acknowledges
    carried none, so the core looks an ACK up again without its tag and then
    checks the tag against the ones the transaction sent (`Transaction.to_tags`).
    """

    request_uri: str
    from_tag: str | None
    to_tag: str | None
    call_id: str
    cseq: int
    top_via: str
    method: str


TransactionKey = ClientKey | ServerKey | LegacyServerKey


def is_rfc3261_branch(branch: str | None) -> bool:
    """True when `branch` carries the magic cookie *and* an identifier after it.

    RFC 4475 3.2.1 (badbranch.dat) sends the bare cookie "z9hG4bK": that is no
    transaction identifier, so such requests are matched the RFC 2543 way.
    """
    return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > 7


def matching_method(method: str) -> str:
    """ACK matches the INVITE server transaction it acknowledges (17.2.3)."""
    return "INVITE" if method == "ACK" else method


def server_key(request: Request) -> ServerKey | LegacyServerKey:
    """The key a received request is matched on (17.2.3). Raises ParseError."""
    via = request.via
    method = matching_method(request.method)
    if is_rfc3261_branch(via.branch):
        return ServerKey(via.branch or "", _lower_sent_by(via.sent_by), method)
    return LegacyServerKey(
        request_uri=str(request.uri),
        from_tag=request.from_tag,
        to_tag=request.to_tag,
        call_id=request.call_id,
        cseq=request.cseq.seq,
        top_via=str(via),
        method=method,
    )


def client_key(message: Request | Response) -> ClientKey:
    """The key of a client transaction, from its request or from a response (17.1.3)."""
    branch = message.via.branch
    if not branch:
        raise ParseError("Missing Via branch")
    return ClientKey(branch, message.cseq.method)


def _lower_sent_by(sent_by: tuple[str, int]) -> tuple[str, int]:
    return (sent_by[0].lower(), sent_by[1])


# ---------------------------------------------------------------- building ACK and CANCEL


def build_ack(invite: Request, response: Response) -> Request:
    """The ACK a client INVITE transaction sends for a 300-699 (RFC 3261 17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE, To from the
    response (with its tag), one Via equal to the INVITE's top Via (same
    branch), and the INVITE's Route set.
    """
    headers = Headers()
    headers.add("Via", invite.headers.getall("Via")[0])
    for route in invite.headers.getall("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", _raw(invite, "From"))
    headers.add("To", _raw(response, "To"))
    headers.add("Call-ID", _raw(invite, "Call-ID"))
    headers.add("CSeq", f"{invite.cseq.seq} ACK")
    return Request("ACK", invite.uri, headers)


def build_cancel(invite: Request, reason: str | None = None) -> Request:
    """A CANCEL for `invite` (RFC 3261 9.1).

    Request-URI, Call-ID, To, From, CSeq number and Route as in the INVITE,
    CSeq method CANCEL, and one Via equal to the INVITE's top Via, so the
    CANCEL's branch matches the INVITE's (9.2 matching at the UAS). `reason` is a
    Reason header value (RFC 3326), e.g. COMPLETED_ELSEWHERE.
    """
    headers = Headers()
    headers.add("Via", invite.headers.getall("Via")[0])
    for route in invite.headers.getall("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    for name in ("From", "To", "Call-ID"):
        headers.add(name, _raw(invite, name))
    headers.add("CSeq", f"{invite.cseq.seq} CANCEL")
    if reason:
        headers.add("Reason", reason)
    return Request("CANCEL", invite.uri, headers)


COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'
"""The Reason (RFC 3326) of a CANCEL to the phones that lost a forked call to another: phones
then do not list it as missed (what Asterisk, FreeSWITCH and 3CX send)."""


def _raw(message: Request | Response, name: str) -> str:
    value = message.headers.get(name)
    if value is None:
        raise LocalProtocolError(f"{name} header missing")
    return value


# ---------------------------------------------------------------- the table runner

Msg = Request | Response | None
Step = Callable[["Transaction", float, Msg, list[Action]], None]
Transitions = dict[tuple[State, Input], tuple[tuple[Step, ...], State]]


class Transaction:
    """One transaction: its request, state, armed timers, and the table that drives it.

    `destination` and `transport` say where its messages go; `reliable`
    decides which timers are armed (17.1.1.2: no retransmissions over TCP).
    """

    __slots__ = (
        "key", "request", "method", "destination", "transport", "reliable", "config", "state",
        "timers", "intervals", "last_response", "ack", "cancel_requested", "cancel_sent",
        "to_tags",
    )  # fmt: skip
    # Slots: a loaded registrar keeps 64*T1 = 32 s of finished transactions alive (Timer J).

    TRANSITIONS: ClassVar[Transitions] = {}
    INITIAL: ClassVar[State] = State.TERMINATED
    START: ClassVar[tuple[Step, ...]] = ()
    is_client: ClassVar[bool] = False

    def __init__(
        self,
        key: TransactionKey,
        request: Request,
        destination: tuple[str, int],
        transport: str,
        reliable: bool,
        config: TimerConfig,
    ) -> None:
        self.key = key
        self.request = request
        self.method = request.method
        self.destination = destination
        self.transport = transport
        self.reliable = reliable
        self.config = config
        self.state = self.INITIAL
        self.timers: dict[TimerName, float] = {}
        self.intervals: dict[TimerName, float] = {}
        #: the last response sent (server); bytes once a non-INVITE one is final
        self.last_response: Response | bytes | None = None
        #: client INVITE: the ACK built for the first 300-699 (17.1.1.3)
        self.ack: Request | None = None
        #: client INVITE: the TU asked to cancel (9.1) / the CANCEL went out
        self.cancel_requested = False
        self.cancel_sent = False
        #: server, RFC 2543 matching: To tags a request of this transaction may carry (the
        #: core replaces the shared empty frozenset for legacy keys only: an RFC 3261 branch
        #: matches without tags, and a set per transaction is one more object to collect)
        self.to_tags: frozenset[str | None] = NO_TAGS

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.state.value} {self.key}>"

    def start(self, now: float) -> list[Action]:
        """Run the entry steps of the initial state (send the request, arm timers, ...)."""
        out: list[Action] = []
        for step in self.START:
            step(self, now, None, out)
        return out

    def handle(
        self, event: Input, now: float, message: Request | Response | None = None
    ) -> list[Action]:
        """Feed one input at time `now`; return what the caller must do."""
        entry = self.TRANSITIONS.get((self.state, event))
        if entry is None:
            if event in LOCAL_INPUTS:
                raise LocalProtocolError(
                    f"{type(self).__name__} in state {self.state.value} cannot take {event.name}"
                )
            return []
        steps, next_state = entry
        out: list[Action] = []
        for step in steps:
            step(self, now, message, out)
        self.state = next_state
        if next_state is State.TERMINATED:
            self.timers.clear()  # the heap's entries go stale: cancelled lazily
            out.append(TERMINATE)
        return out

    def time_left(self, now: float) -> dict[str, float]:
        """Seconds until each armed timer fires (for the debug dump)."""
        return {name.value: round(deadline - now, 3) for name, deadline in self.timers.items()}

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED


# ---------------------------------------------------------------- steps shared by the machines


BACKOFF_TIMERS = frozenset({TimerName.A, TimerName.E, TimerName.G})
"""The retransmission timers, whose next interval grows from the last (17.1.1.2, 17.1.2.2,
17.2.1). Only they are kept in `Transaction.intervals`: a wait timer's (J, K, ...) interval
is never read again, and an empty dict is one object less for the collector to track in
each of the 64*T1 = 32 s of finished transactions a loaded registrar holds."""


def arm(*names: TimerName) -> Step:
    """Arm each named timer with its initial interval, unless this transport skips it."""

    def step(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
        for name in names:
            interval = tx.config.initial(name, tx.reliable)
            if interval is None:
                continue
            if name in BACKOFF_TIMERS:
                tx.intervals[name] = interval
            _set_timer(tx, name, now + interval, out)

    step.__name__ = f"arm_{'_'.join(n.value for n in names)}"
    return step


def backoff(name: TimerName) -> Step:
    """Re-arm retransmission timer `name` with the next interval (A doubles, E/G cap at T2)."""

    def step(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
        interval = tx.config.backoff(name, tx.intervals[name])
        tx.intervals[name] = interval
        _set_timer(tx, name, now + interval, out)

    step.__name__ = f"backoff_{name.value}"
    return step


def cap_at_t2(name: TimerName) -> Step:
    """17.1.2.2: in Proceeding, Timer E is reset to T2 each time it fires."""

    def step(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
        tx.intervals[name] = tx.config.t2
        _set_timer(tx, name, now + tx.config.t2, out)

    step.__name__ = f"t2_{name.value}"
    return step


def cancel(*names: TimerName) -> Step:
    """Disarm the named timers: their heap entries go stale and are skipped (lazily)."""

    def step(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
        timers = tx.timers
        for name in names:
            timers.pop(name, None)

    step.__name__ = f"cancel_{'_'.join(n.value for n in names)}"
    return step


def report_timeout(name: TimerName) -> Step:
    def step(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
        tx.timers.pop(name, None)
        out.append(ReportTimeout(name))

    step.__name__ = f"timeout_{name.value}"
    return step


def expire(name: TimerName) -> Step:
    """A wait timer (D, I, J, K, L, M) fired: forget it, the transition terminates."""

    def step(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
        tx.timers.pop(name, None)

    step.__name__ = f"expire_{name.value}"
    return step


RELEASED_REQUEST = Request("OPTIONS", "sip:released.invalid")
"""What a transaction holds instead of its request once it no longer needs it."""


def release_request(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    """Let the request go once the machine no longer sends or reads it.

    The core keeps a finished transaction until its wait timer: 64*T1 = 32 s for an
    Accepted INVITE (Timers L and M, RFC 6026) and a Completed non-INVITE server (J). At
    hundreds of calls a second that is tens of thousands of parsed messages that only the
    garbage collector still looks at, again and again; the transaction's method, key and
    destination are kept apart from the request and are all it still uses.
    """
    tx.request = RELEASED_REQUEST


def pass_up(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    assert isinstance(message, Request | Response)
    out.append(PassUp(message))


def report_transport_error(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    out.append(REPORT_TRANSPORT_ERROR)


def _set_timer(tx: Transaction, name: TimerName, deadline: float, out: list[Action]) -> None:
    tx.timers[name] = deadline
    out.append(ArmTimer(name, deadline))


def all_pairs(machine: type[Transaction]) -> Iterable[tuple[State, Input]]:
    """Every (state, input) pair of `machine`'s states, for exhaustive tests."""
    states = {machine.INITIAL} | {s for (s, _) in machine.TRANSITIONS}
    states |= {nxt for (_, nxt) in machine.TRANSITIONS.values()}
    return [(s, i) for s in sorted(states, key=lambda s: s.value) for i in Input]
