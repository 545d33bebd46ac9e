"""CANCEL of a non-INVITE request at the PBX (RFC 3261 9.2): when it matches a transaction
(same branch and sent-by, any method) it gets 200 and changes nothing; when nothing matches,
481. REGISTERs answered by the lane (pbx.registrar_lane) and by the full path (lane off) alike.
"""

from __future__ import annotations

from tests.integration.recorded_pbx import (
    WiredPbx,
    cancel_of,
    header,
    request,
    status_line,
)


async def test_cancel_of_an_answered_register_gets_200_and_changes_nothing(
    wired: WiredPbx,
) -> None:
    answer = wired.registered("r1")
    if wired.lane is not None:
        assert wired.lane.answered == 2, "the lane answered both REGISTERs"
    before = wired.bindings()
    assert [b.contact for b in before] == ["sip:1001@192.168.1.10:5060"]
    registered = request("REGISTER", "r1", 2, extra=(wired.authorization(),))
    cancelled = wired.answer(cancel_of(registered, 2))
    assert status_line(cancelled) == "SIP/2.0 200 OK"
    assert header(cancelled, "CSeq") == "2 CANCEL"
    assert header(cancelled, "Call-ID") == "call-r1@phone"
    assert "branch=z9hG4bKr1;" in header(cancelled, "Via")
    assert wired.bindings() == before and len(wired.changes) == 1
    assert wired.answer(registered) == answer, "the REGISTER's answer is still kept as it was"
    assert wired.bindings() == before and len(wired.changes) == 1


async def test_cancel_of_an_unknown_branch_gets_481(wired: WiredPbx) -> None:
    wired.registered("r2")
    stray = request("REGISTER", "nobody", 2)
    answer = wired.answer(cancel_of(stray, 2))
    assert status_line(answer) == "SIP/2.0 481 Call/Transaction Does Not Exist"
    assert header(answer, "CSeq") == "2 CANCEL"
    assert len(wired.bindings()) == 1


async def test_cancel_of_an_answered_options_gets_200(wired: WiredPbx) -> None:
    options = request("OPTIONS", "o1")
    assert status_line(wired.answer(options)) == "SIP/2.0 200 OK"
    answer = wired.answer(cancel_of(options, 1))
    assert status_line(answer) == "SIP/2.0 200 OK" and header(answer, "CSeq") == "1 CANCEL"


async def test_cancel_retransmission_gets_the_same_answer(wired: WiredPbx) -> None:
    wired.registered("r3")
    cancel = cancel_of(request("REGISTER", "r3", 2), 2)
    first = wired.answer(cancel)
    assert status_line(first) == "SIP/2.0 200 OK"
    assert wired.answer(cancel) == first
