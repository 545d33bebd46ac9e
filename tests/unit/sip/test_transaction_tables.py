"""Every (state, input) pair of the four transaction machines, against a spec written out here.

The spec below is transcribed from RFC 3261 figures 5-8 and RFC 6026 sections
7.1-7.2, independently of the tables in pbx/sip/transaction_*.py. Each entry
is (next state, what comes out): S = a message is transmitted, U = passed up
to the TU, T = a timeout reported, X = a transport error reported, C = a
CANCEL requested, - = nothing. A pair not listed must be absorbed when the
input comes from the wire or a timer (no output, same state) and must raise
LocalProtocolError when it comes from the TU.
"""

from __future__ import annotations

import pytest

from pbx.sip.errors import LocalProtocolError
from pbx.sip.timers import TimerName
from pbx.sip.transaction import (
    LOCAL_INPUTS,
    Action,
    Input,
    PassUp,
    ReportTimeout,
    ReportTransportError,
    SendCancel,
    State,
    Transaction,
    Transmit,
)
from pbx.sip.transaction_client import ClientInviteTransaction, ClientNonInviteTransaction
from pbx.sip.transaction_server import ServerInviteTransaction, ServerNonInviteTransaction
from tests.unit.sip.test_transaction_support import BOB, CONFIG, make_request, reply

C, TR, P, CO, CF, AC, TE = (
    State.CALLING,
    State.TRYING,
    State.PROCEEDING,
    State.COMPLETED,
    State.CONFIRMED,
    State.ACCEPTED,
    State.TERMINATED,
)
I = Input  # noqa: E741

CLIENT_INVITE = {
    (C, I.TIMER_A): (C, "S"),
    (C, I.TIMER_B): (TE, "T"),
    (C, I.RECV_1XX): (P, "U"),
    (C, I.RECV_2XX): (AC, "U"),
    (C, I.RECV_FAILURE): (CO, "SU"),
    (C, I.TRANSPORT_ERROR): (TE, "X"),
    (C, I.CANCEL): (C, "-"),
    (P, I.RECV_1XX): (P, "U"),
    (P, I.RECV_2XX): (AC, "U"),
    (P, I.RECV_FAILURE): (CO, "SU"),
    (P, I.TRANSPORT_ERROR): (TE, "X"),
    (P, I.CANCEL): (P, "C"),
    (P, I.TIMER_CANCEL_GUARD): (TE, "T"),
    (CO, I.RECV_FAILURE): (CO, "S"),
    (CO, I.RECV_2XX): (CO, "U"),
    (CO, I.TIMER_D): (TE, "-"),
    (CO, I.TRANSPORT_ERROR): (TE, "X"),
    (CO, I.CANCEL): (CO, "-"),
    (AC, I.RECV_2XX): (AC, "U"),
    (AC, I.TIMER_M): (TE, "-"),
    (AC, I.CANCEL): (AC, "-"),
}

CLIENT_NON_INVITE = {
    (TR, I.TIMER_E): (TR, "S"),
    (TR, I.TIMER_F): (TE, "T"),
    (TR, I.RECV_1XX): (P, "U"),
    (TR, I.RECV_2XX): (CO, "U"),
    (TR, I.RECV_FAILURE): (CO, "U"),
    (TR, I.TRANSPORT_ERROR): (TE, "X"),
    (P, I.TIMER_E): (P, "S"),
    (P, I.TIMER_F): (TE, "T"),
    (P, I.RECV_1XX): (P, "U"),
    (P, I.RECV_2XX): (CO, "U"),
    (P, I.RECV_FAILURE): (CO, "U"),
    (P, I.TRANSPORT_ERROR): (TE, "X"),
    (CO, I.TIMER_K): (TE, "-"),
}

SERVER_INVITE = {
    (P, I.REQUEST): (P, "S"),
    (P, I.SEND_1XX): (P, "S"),
    (P, I.SEND_2XX): (AC, "S"),
    (P, I.SEND_FAILURE): (CO, "S"),
    (P, I.TRANSPORT_ERROR): (TE, "X"),
    (CO, I.REQUEST): (CO, "S"),
    (CO, I.ACK): (CF, "-"),
    (CO, I.TIMER_G): (CO, "S"),
    (CO, I.TIMER_H): (TE, "T"),
    (CO, I.TRANSPORT_ERROR): (TE, "X"),
    (CF, I.TIMER_I): (TE, "-"),
    (AC, I.ACK): (AC, "U"),
    (AC, I.SEND_2XX): (AC, "S"),
    (AC, I.TIMER_L): (TE, "-"),
    (AC, I.TRANSPORT_ERROR): (AC, "X"),
}

SERVER_NON_INVITE = {
    (TR, I.REQUEST): (TR, "-"),
    (TR, I.SEND_1XX): (P, "S"),
    (TR, I.SEND_2XX): (CO, "S"),
    (TR, I.SEND_FAILURE): (CO, "S"),
    (P, I.REQUEST): (P, "S"),
    (P, I.SEND_1XX): (P, "S"),
    (P, I.SEND_2XX): (CO, "S"),
    (P, I.SEND_FAILURE): (CO, "S"),
    (P, I.TRANSPORT_ERROR): (TE, "X"),
    (CO, I.REQUEST): (CO, "S"),
    (CO, I.TIMER_J): (TE, "-"),
    (CO, I.TRANSPORT_ERROR): (TE, "X"),
}

MACHINES = {
    ClientInviteTransaction: ("INVITE", CLIENT_INVITE, (C, P, CO, AC, TE)),
    ClientNonInviteTransaction: ("OPTIONS", CLIENT_NON_INVITE, (TR, P, CO, TE)),
    ServerInviteTransaction: ("INVITE", SERVER_INVITE, (P, CO, CF, AC, TE)),
    ServerNonInviteTransaction: ("OPTIONS", SERVER_NON_INVITE, (TR, P, CO, TE)),
}

_STATUS = {
    I.RECV_1XX: 180,
    I.RECV_2XX: 200,
    I.RECV_FAILURE: 486,
    I.SEND_1XX: 180,
    I.SEND_2XX: 200,
    I.SEND_FAILURE: 486,
}
_CODES = {
    Transmit: "S",
    PassUp: "U",
    ReportTimeout: "T",
    ReportTransportError: "X",
    SendCancel: "C",
}


def machine_in(cls: type[Transaction], state: State) -> Transaction:
    method = MACHINES[cls][0]
    tx = cls("key", make_request(method), BOB, "UDP", False, CONFIG)
    tx.start(0.0)
    tx.state = state
    for name in (TimerName.A, TimerName.E, TimerName.G):
        tx.intervals[name] = CONFIG.t1
    tx.last_response = reply(tx.request, 180)
    return tx


def message_for(tx: Transaction, event: Input):
    if event in _STATUS:
        return reply(tx.request, _STATUS[event])
    if event is I.REQUEST:
        return tx.request
    if event is I.ACK:
        return make_request("ACK", to_tag="bob1")
    return None


def codes(actions: list[Action]) -> str:
    found = "".join(sorted({_CODES[type(a)] for a in actions if type(a) in _CODES}))
    return found or "-"


PAIRS = [
    (cls, state, event)
    for cls, (_, _, states) in MACHINES.items()
    for state in states
    for event in I
]


@pytest.mark.parametrize(
    ("cls", "state", "event"),
    PAIRS,
    ids=[f"{cls.__name__}-{state.name}-{event.name}" for cls, state, event in PAIRS],
)
def test_every_state_input_pair(cls: type[Transaction], state: State, event: Input) -> None:
    spec = MACHINES[cls][1]
    tx = machine_in(cls, state)
    message = message_for(tx, event)
    if (state, event) in spec:
        next_state, outputs = spec[(state, event)]
        actions = tx.handle(event, 1.0, message)
        assert tx.state is next_state
        expected = "".join(sorted(outputs.replace("-", ""))) or "-"
        assert codes(actions) == expected
    elif event in LOCAL_INPUTS:
        with pytest.raises(LocalProtocolError):
            tx.handle(event, 1.0, message)
        assert tx.state is state
    else:
        assert tx.handle(event, 1.0, message) == []
        assert tx.state is state


@pytest.mark.parametrize("cls", list(MACHINES), ids=lambda c: c.__name__)
def test_tables_hold_exactly_the_spec(cls: type[Transaction]) -> None:
    assert set(cls.TRANSITIONS) == set(MACHINES[cls][1])
    assert cls.INITIAL is MACHINES[cls][2][0]


def test_pair_count_covers_every_input_in_every_state() -> None:
    assert len(PAIRS) == (5 + 4 + 5 + 4) * len(I)
