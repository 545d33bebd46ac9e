"""UAS 2xx retransmission until ACK (RFC 3261 13.3.1.4), driven by a fake clock."""

from __future__ import annotations

from pbx.sip.dialog import AnswerRetransmitter, RetransmitAction


def drive(timer: AnswerRetransmitter, until: float) -> list[tuple[float, RetransmitAction]]:
    """Fire on_timer at every deadline, as net/ would, up to `until` (bounded loop)."""
    fired = []
    for _ in range(1000):
        deadline = timer.next_deadline()
        if deadline is None or deadline > until:
            break
        fired.append((deadline, timer.on_timer(deadline)))
    return fired


def test_interval_doubles_from_t1_caps_at_t2_and_gives_up_at_64_t1() -> None:
    timer = AnswerRetransmitter(started=100.0)
    fired = drive(timer, 1000.0)
    times = [round(t - 100.0, 3) for t, action in fired if action is RetransmitAction.RETRANSMIT]
    # T1=0.5: 0.5, then +1, +2, +4 (T2), +4, ...
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert times[-1] == 31.5
    assert fired[-1] == (132.0, RetransmitAction.GIVE_UP)  # 64 * T1 = 32 s
    assert timer.next_deadline() is None
    assert timer.on_timer(200.0) is RetransmitAction.DONE


def test_ack_stops_retransmissions() -> None:
    timer = AnswerRetransmitter(started=0.0)
    assert timer.on_timer(0.2) is RetransmitAction.WAIT
    assert timer.on_timer(0.5) is RetransmitAction.RETRANSMIT
    assert timer.next_deadline() == 1.5
    timer.ack_received()
    assert timer.next_deadline() is None
    assert timer.on_timer(1.5) is RetransmitAction.DONE


def test_late_timer_sends_one_copy_and_skips_missed_slots() -> None:
    timer = AnswerRetransmitter(started=0.0)
    assert timer.on_timer(5.0) is RetransmitAction.RETRANSMIT
    assert timer.next_deadline() is not None and timer.next_deadline() > 5.0
    assert timer.on_timer(5.0) is RetransmitAction.WAIT


def test_custom_timers() -> None:
    timer = AnswerRetransmitter(started=0.0, t1=0.1, t2=0.2)
    fired = drive(timer, 100.0)
    gaps = [b[0] - a[0] for a, b in zip(fired, fired[1:], strict=False)][:4]
    assert [round(g, 3) for g in gaps] == [0.2, 0.2, 0.2, 0.2]
    assert fired[-1] == (6.4, RetransmitAction.GIVE_UP)
