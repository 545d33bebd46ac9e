"""Client transactions: INVITE (RFC 3261 17.1.1, RFC 6026 7.2) and non-INVITE (17.1.2).

Theory of operation
-------------------
Each class is a table (see pbx.sip.transaction). The client INVITE machine:

    Calling --1xx--> Proceeding --2xx--> Accepted --Timer M--> Terminated
       |  Timer A: resend, A doubles        |  2xx retransmissions: passed up (6026 7.2)
       |  Timer B: timeout                  |
       +--300-699: ACK, pass up--> Completed --Timer D--> Terminated
                                      300-699 again: resend the ACK

The ACK for a 300-699 is built here (17.1.1.3); the ACK for a 2xx belongs to
the TU (13.2.2.4) and goes out statelessly. The TU may cancel (9.1): in
Calling the CANCEL waits for the first 1xx; once sent, a guard timer of
64*T1 destroys the transaction if no final answer ever comes.

The client non-INVITE machine:

    Trying --1xx--> Proceeding --200-699--> Completed --Timer K--> Terminated
      Timer E: resend, E doubles up to T2 (in Proceeding: E = T2)
      Timer F: timeout

On reliable transports Timers A and E are not armed and D and K are zero
(17.1.1.2, 17.1.2.2).
"""

from __future__ import annotations

from pbx.sip.message import Response
from pbx.sip.timers import TimerName
from pbx.sip.transaction import (
    SEND_CANCEL,
    Action,
    Input,
    Msg,
    State,
    Step,
    Transaction,
    Transitions,
    Transmit,
    arm,
    backoff,
    build_ack,
    cancel,
    cap_at_t2,
    expire,
    pass_up,
    release_request,
    report_timeout,
    report_transport_error,
)

A, B, D, E, F, K, M = (TimerName[n] for n in "ABDEFKM")
GUARD = TimerName.CANCEL_GUARD


def send_request(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    out.append(Transmit(tx.request))


def send_ack(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    """17.1.1.3: build the ACK once, from the first final response, and send it."""
    assert isinstance(message, Response)
    if tx.ack is None:
        tx.ack = build_ack(tx.request, message)
    out.append(Transmit(tx.ack))


def want_cancel(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    """9.1: a CANCEL asked for in Calling waits for the first provisional response."""
    tx.cancel_requested = True


def send_cancel(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    """9.1: send the CANCEL (once), and destroy the INVITE if no final comes in 64*T1."""
    if not tx.cancel_requested or tx.cancel_sent:
        return
    tx.cancel_sent = True
    out.append(SEND_CANCEL)
    arm(GUARD)(tx, now, message, out)


def request_cancel(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    want_cancel(tx, now, message, out)
    send_cancel(tx, now, message, out)


_INVITE_1XX: tuple[Step, ...] = (cancel(A, B), pass_up, send_cancel)
# Past its final response a client INVITE sends only the ACK it built (17.1.1.3) or nothing
# (RFC 6026 7.2), and a non-INVITE nothing: the request goes (see release_request).
_INVITE_2XX: tuple[Step, ...] = (cancel(A, B, GUARD), pass_up, arm(M), release_request)
_INVITE_FAILURE: tuple[Step, ...] = (
    cancel(A, B, GUARD),
    send_ack,
    pass_up,
    arm(D),
    release_request,
)
_ABORT: tuple[Step, ...] = (report_transport_error,)

INVITE_CLIENT: Transitions = {
    (State.CALLING, Input.TIMER_A): ((send_request, backoff(A)), State.CALLING),
    (State.CALLING, Input.TIMER_B): ((report_timeout(B),), State.TERMINATED),
    (State.CALLING, Input.RECV_1XX): (_INVITE_1XX, State.PROCEEDING),
    (State.CALLING, Input.RECV_2XX): (_INVITE_2XX, State.ACCEPTED),
    (State.CALLING, Input.RECV_FAILURE): (_INVITE_FAILURE, State.COMPLETED),
    (State.CALLING, Input.TRANSPORT_ERROR): (_ABORT, State.TERMINATED),
    (State.CALLING, Input.CANCEL): ((want_cancel,), State.CALLING),
    (State.PROCEEDING, Input.RECV_1XX): ((pass_up,), State.PROCEEDING),
    (State.PROCEEDING, Input.RECV_2XX): (_INVITE_2XX, State.ACCEPTED),
    (State.PROCEEDING, Input.RECV_FAILURE): (_INVITE_FAILURE, State.COMPLETED),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (_ABORT, State.TERMINATED),
    (State.PROCEEDING, Input.CANCEL): ((request_cancel,), State.PROCEEDING),
    (State.PROCEEDING, Input.TIMER_CANCEL_GUARD): ((report_timeout(GUARD),), State.TERMINATED),
    # 17.1.1.2: a retransmitted final is answered with the same ACK, not passed up.
    (State.COMPLETED, Input.RECV_FAILURE): ((send_ack,), State.COMPLETED),
    # A 2xx from another fork after a failure: the TU must ACK and BYE it (13.2.2.4).
    (State.COMPLETED, Input.RECV_2XX): ((pass_up,), State.COMPLETED),
    (State.COMPLETED, Input.TIMER_D): ((expire(D),), State.TERMINATED),
    (State.COMPLETED, Input.TRANSPORT_ERROR): (_ABORT, State.TERMINATED),
    (State.COMPLETED, Input.CANCEL): ((), State.COMPLETED),
    # RFC 6026 7.2: 2xx retransmissions (and 2xx from other forks) go to the TU.
    (State.ACCEPTED, Input.RECV_2XX): ((pass_up,), State.ACCEPTED),
    (State.ACCEPTED, Input.TIMER_M): ((expire(M),), State.TERMINATED),
    (State.ACCEPTED, Input.CANCEL): ((), State.ACCEPTED),
}


class ClientInviteTransaction(Transaction):
    """An outgoing INVITE (RFC 3261 17.1.1, RFC 6026 7.2)."""

    __slots__ = ()

    TRANSITIONS = INVITE_CLIENT
    INITIAL = State.CALLING
    START = (send_request, arm(A, B))
    is_client = True


_NON_INVITE_FINAL: tuple[Step, ...] = (cancel(E, F), pass_up, arm(K), release_request)

NON_INVITE_CLIENT: Transitions = {
    (State.TRYING, Input.TIMER_E): ((send_request, backoff(E)), State.TRYING),
    (State.TRYING, Input.TIMER_F): ((report_timeout(F),), State.TERMINATED),
    (State.TRYING, Input.RECV_1XX): ((pass_up,), State.PROCEEDING),
    (State.TRYING, Input.RECV_2XX): (_NON_INVITE_FINAL, State.COMPLETED),
    (State.TRYING, Input.RECV_FAILURE): (_NON_INVITE_FINAL, State.COMPLETED),
    (State.TRYING, Input.TRANSPORT_ERROR): (_ABORT, State.TERMINATED),
    (State.PROCEEDING, Input.TIMER_E): ((send_request, cap_at_t2(E)), State.PROCEEDING),
    (State.PROCEEDING, Input.TIMER_F): ((report_timeout(F),), State.TERMINATED),
    (State.PROCEEDING, Input.RECV_1XX): ((pass_up,), State.PROCEEDING),
    (State.PROCEEDING, Input.RECV_2XX): (_NON_INVITE_FINAL, State.COMPLETED),
    (State.PROCEEDING, Input.RECV_FAILURE): (_NON_INVITE_FINAL, State.COMPLETED),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (_ABORT, State.TERMINATED),
    # 17.1.2.2: Completed absorbs every retransmitted response.
    (State.COMPLETED, Input.TIMER_K): ((expire(K),), State.TERMINATED),
}


class ClientNonInviteTransaction(Transaction):
    """An outgoing request other than INVITE and ACK (RFC 3261 17.1.2)."""

    __slots__ = ()

    TRANSITIONS = NON_INVITE_CLIENT
    INITIAL = State.TRYING
    START = (send_request, arm(E, F))
    is_client = True
