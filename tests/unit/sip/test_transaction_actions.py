"""What the machines hand the core: no CancelTimer (cancellation is lazy), shared
field-less actions, and disarmed timers that never fire (RFC 3261 17.2.1)."""

from __future__ import annotations

from pbx.sip.core import SipCore
from pbx.sip.timers import TimerName
from pbx.sip.transaction import TERMINATE, ArmTimer, CancelTimer, Input, State
from pbx.sip.transaction_server import ServerInviteTransaction
from tests.unit.sip.test_transaction_support import ALICE, CONFIG, T1, make_request, reply


def test_ack_disarms_g_and_h_without_actions_and_they_never_fire() -> None:
    request = make_request("INVITE")
    alone = ServerInviteTransaction(("k",), request, ALICE, "UDP", False, CONFIG)  # type: ignore[arg-type]
    alone.start(0.0)
    alone.handle(Input.SEND_FAILURE, 0.0, reply(request, 486))
    assert set(alone.timers) == {TimerName.G, TimerName.H}
    actions = alone.handle(Input.ACK, 0.1, make_request("ACK", to_tag="bob1"))
    assert actions == [ArmTimer(TimerName.I, 0.1 + 5.0)]  # no CancelTimer for G and H
    assert not any(isinstance(a, CancelTimer) for a in actions)
    assert set(alone.timers) == {TimerName.I} and alone.state is State.CONFIRMED

    core = SipCore(CONFIG)
    core.receive(bytes(request), ALICE, "UDP", 0.0)
    [event] = core.pop_events()
    core.send_response(event.tx, reply(event.request, 486), 0.0)
    core.pop_outgoing()
    core.receive(bytes(make_request("ACK", to_tag="bob1")), ALICE, "UDP", 0.1)
    core.handle_timers(64 * T1)  # G's and H's heap entries are stale: skipped
    assert core.pop_outgoing() == [] and core.pop_events() == []
    assert core.transaction_count == 0  # Timer I ended it


def test_termination_hands_over_the_one_shared_terminate_action() -> None:
    request = make_request("INVITE", transport="TCP")
    key = ("k",)
    tx = ServerInviteTransaction(key, request, ALICE, "TCP", True, CONFIG)  # type: ignore[arg-type]
    tx.start(0.0)
    tx.handle(Input.SEND_FAILURE, 0.0, reply(request, 486))
    tx.handle(Input.ACK, 0.1, make_request("ACK", to_tag="bob1", transport="TCP"))
    assert tx.handle(Input.TIMER_I, 0.1) == [TERMINATE]  # 17.2.1: I is zero over TCP
    assert tx.state is State.TERMINATED and tx.timers == {} and tx.key == key
