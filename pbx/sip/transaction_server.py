"""Server transactions: INVITE (RFC 3261 17.2.1, RFC 6026 7.1) and non-INVITE (17.2.2).

Theory of operation
-------------------
Each class is a table (see pbx.sip.transaction). The server INVITE machine
passes the INVITE up and offers a 100 Trying (17.2.1: it MUST be sent unless the
TU is known to answer within 200 ms). The core sends that 100 at its next
pop_outgoing() unless the TU has answered by then: a TU handed the INVITE before
the shell drains the outgoing queue, which answers at once (407, 404, 486, ...),
saves a message the caller does not need; one that answers later still quenches
the caller's retransmissions with a 100 sent before Timer A fires.

    Proceeding --TU 2xx--> Accepted --Timer L--> Terminated
      | INVITE again: resend the last 1xx      INVITE again: absorbed (6026 7.1)
      | TU 1xx: send                           ACK: passed up to the TU (6026 7.1)
      |                                        TU 2xx again: sent (the TU retransmits 2xx)
      +--TU 300-699--> Completed --ACK--> Confirmed --Timer I--> Terminated
                         Timer G: resend the final, G doubles up to T2
                         INVITE again: resend the final
                         Timer H: no ACK came, tell the TU

The server non-INVITE machine:

    Trying --TU 1xx--> Proceeding --TU 200-699--> Completed --Timer J--> Terminated
      request again: absorbed in Trying, answered with the last response after

On reliable transports Timer G is not armed and I and J are zero (17.2.1,
17.2.2). A response the TU sends in a state that cannot take it (a 1xx after
the final) is a LocalProtocolError.
"""

from __future__ import annotations

from pbx.sip.message import Response
from pbx.sip.timers import TimerName
from pbx.sip.transaction import (
    RELEASED_REQUEST,
    Action,
    Input,
    Msg,
    OfferTrying,
    PassUp,
    State,
    Step,
    Transaction,
    Transitions,
    Transmit,
    arm,
    backoff,
    cancel,
    expire,
    pass_up,
    release_request,
    report_timeout,
    report_transport_error,
)

__all__ = ["RELEASED_REQUEST", "ServerInviteTransaction", "ServerNonInviteTransaction", "trying"]

G, H, I, J, L = (TimerName[n] for n in "GHIJL")  # noqa: E741


def pass_up_request(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    out.append(PassUp(tx.request))


_OFFER_TRYING = OfferTrying()


def offer_trying(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    """17.2.1: ask the core for a 100, sent unless the TU answers first (see trying())."""
    out.append(_OFFER_TRYING)


def trying(tx: Transaction) -> Response | None:
    """The 100 Trying that quenches INVITE retransmissions (17.2.1, To tag not added), now
    the last response; None when the TU has answered already or the transaction is over."""
    if tx.last_response is not None or tx.state is not State.PROCEEDING:
        return None
    response = tx.last_response = tx.request.make_response(100)
    return response


def send_response(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    assert isinstance(message, Response)
    tx.last_response = message
    out.append(Transmit(message))


def resend_response(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    """17.2.1, 17.2.2: a retransmitted request gets the most recent response again."""
    if tx.last_response is not None:
        out.append(Transmit(tx.last_response))


def transmit(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    """Send what the TU gives without keeping it (a 2xx retransmission in Accepted)."""
    assert isinstance(message, Response)
    out.append(Transmit(message))


def forget_response(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    """17.2.1: Confirmed only absorbs ACKs and INVITEs until Timer I; nothing is resent.
    RFC 6026 7.1: nor is anything in Accepted (the TU retransmits its 2xx itself)."""
    tx.last_response = None


def send_final(tx: Transaction, now: float, message: Msg, out: list[Action]) -> None:
    """17.2.1, 17.2.2: a final response that will only ever be sent again as it is, kept as
    the bytes it went out as: a non-INVITE's until Timer J, an INVITE's 300-699 for Timer G
    and retransmitted INVITEs until the ACK.

    The parsed Response (headers, their list and caches) would be several more objects in
    each finished transaction (a loaded registrar holds 64*T1 = 32 s of them), which every
    full collection walks. The core sends bytes as they are, so this is the only
    serialization, however often the response is resent.
    """
    assert isinstance(message, Response)
    data = bytes(message)
    tx.last_response = data
    out.append(Transmit(data))


_ABORT: tuple[Step, ...] = (report_transport_error,)

INVITE_SERVER: Transitions = {
    (State.PROCEEDING, Input.REQUEST): ((resend_response,), State.PROCEEDING),
    (State.PROCEEDING, Input.SEND_1XX): ((send_response,), State.PROCEEDING),
    # RFC 6026 7.1: Accepted only absorbs INVITE retransmissions, passes ACKs up and sends
    # the 2xx the TU retransmits (13.3.1.4) until Timer L: it needs neither the INVITE nor
    # the 2xx for that, and keeps neither for those 64*T1 = 32 s (see release_request).
    (State.PROCEEDING, Input.SEND_2XX): (
        (transmit, arm(L), release_request, forget_response),
        State.ACCEPTED,
    ),
    (State.PROCEEDING, Input.SEND_FAILURE): (
        (send_final, arm(G, H), release_request),
        State.COMPLETED,
    ),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (_ABORT, State.TERMINATED),
    (State.COMPLETED, Input.REQUEST): ((resend_response,), State.COMPLETED),
    (State.COMPLETED, Input.ACK): ((cancel(G, H), arm(I), forget_response), State.CONFIRMED),
    (State.COMPLETED, Input.TIMER_G): ((resend_response, backoff(G)), State.COMPLETED),
    (State.COMPLETED, Input.TIMER_H): ((report_timeout(H),), State.TERMINATED),
    (State.COMPLETED, Input.TRANSPORT_ERROR): (_ABORT, State.TERMINATED),
    # Confirmed absorbs retransmitted ACKs and INVITEs (17.2.1).
    (State.CONFIRMED, Input.TIMER_I): ((expire(I),), State.TERMINATED),
    (State.ACCEPTED, Input.ACK): ((pass_up,), State.ACCEPTED),
    (State.ACCEPTED, Input.SEND_2XX): ((transmit,), State.ACCEPTED),
    (State.ACCEPTED, Input.TIMER_L): ((expire(L),), State.TERMINATED),
    # The 2xx belongs to the TU now; it hears of the failure and Timer L still cleans up.
    (State.ACCEPTED, Input.TRANSPORT_ERROR): (_ABORT, State.ACCEPTED),
}


class ServerInviteTransaction(Transaction):
    """An incoming INVITE (RFC 3261 17.2.1, RFC 6026 7.1)."""

    __slots__ = ()

    TRANSITIONS = INVITE_SERVER
    INITIAL = State.PROCEEDING
    START = (pass_up_request, offer_trying)


_NON_INVITE_FINAL: tuple[Step, ...] = (send_final, arm(J), release_request)

NON_INVITE_SERVER: Transitions = {
    (State.TRYING, Input.REQUEST): ((), State.TRYING),
    (State.TRYING, Input.SEND_1XX): ((send_response,), State.PROCEEDING),
    (State.TRYING, Input.SEND_2XX): (_NON_INVITE_FINAL, State.COMPLETED),
    (State.TRYING, Input.SEND_FAILURE): (_NON_INVITE_FINAL, State.COMPLETED),
    (State.PROCEEDING, Input.REQUEST): ((resend_response,), State.PROCEEDING),
    (State.PROCEEDING, Input.SEND_1XX): ((send_response,), State.PROCEEDING),
    (State.PROCEEDING, Input.SEND_2XX): (_NON_INVITE_FINAL, State.COMPLETED),
    (State.PROCEEDING, Input.SEND_FAILURE): (_NON_INVITE_FINAL, State.COMPLETED),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (_ABORT, State.TERMINATED),
    (State.COMPLETED, Input.REQUEST): ((resend_response,), State.COMPLETED),
    (State.COMPLETED, Input.TIMER_J): ((expire(J),), State.TERMINATED),
    (State.COMPLETED, Input.TRANSPORT_ERROR): (_ABORT, State.TERMINATED),
}


class ServerNonInviteTransaction(Transaction):
    """An incoming request other than INVITE and ACK (RFC 3261 17.2.2)."""

    __slots__ = ()

    TRANSITIONS = NON_INVITE_SERVER
    INITIAL = State.TRYING
    START = (pass_up_request,)
