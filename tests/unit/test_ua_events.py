"""The user agent's call state table and event shapes (pbx.ua.events)."""

from __future__ import annotations

import dataclasses

import pytest

from pbx.ua.events import (
    CALL_TRANSITIONS,
    Account,
    CallState,
    CallStateChanged,
    RegistrationChanged,
    RegistrationState,
    can_move,
)

S = CallState


def test_every_state_has_a_row_and_ended_is_final():
    assert set(CALL_TRANSITIONS) == set(CallState)
    assert CALL_TRANSITIONS[S.ENDED] == frozenset()
    assert CALL_TRANSITIONS[S.ENDING] == frozenset({S.ENDED})


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (S.DIALING, S.RINGING, True),
        (S.RINGING, S.EARLY_MEDIA, True),
        (S.EARLY_MEDIA, S.CONNECTED, True),
        (S.CONNECTED, S.ON_HOLD, True),
        (S.ON_HOLD, S.CONNECTED, True),
        (S.CONNECTED, S.ENDING, True),
        (S.ON_HOLD, S.ENDED, True),
        (S.CONNECTED, S.RINGING, False),  # a late 180 never un-answers a call
        (S.ENDED, S.CONNECTED, False),  # a late 200 never revives an ended call
        (S.ENDING, S.CONNECTED, False),
        (S.DIALING, S.ON_HOLD, False),
    ],
)
def test_transitions(old, new, allowed):
    assert can_move(old, new) is allowed


def test_every_state_but_ended_can_end():
    for state in CallState:
        if state is not S.ENDED:
            assert can_move(state, S.ENDED)


def test_state_values_are_blinks_words():
    assert [s.value for s in CallState] == [
        "dialing", "ringing", "early_media", "connected", "on_hold", "ending", "ended",
    ]  # fmt: skip


def test_account_aor_uses_the_domain_or_the_server():
    assert Account("1001", "pw", "10.0.0.1", 5070).aor == "sip:1001@10.0.0.1"
    assert Account("1001", "pw", "10.0.0.1", domain="pbx.example").aor == "sip:1001@pbx.example"


def test_events_are_frozen():
    event = RegistrationChanged(RegistrationState.REGISTERED, 200, "OK", 300)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.status = 401  # type: ignore[misc]
    changed = CallStateChanged(object(), S.DIALING, S.RINGING, 180, "Ringing")  # type: ignore[arg-type]
    assert (changed.old, changed.new, changed.status) == (S.DIALING, S.RINGING, 180)
