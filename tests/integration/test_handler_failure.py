"""A request whose handler raises still gets a final answer: 500 Server Internal Error
(RFC 3261 21.5.1), not silence until the phone's transaction times out. On the REGISTER lane
the 500 is kept like any lane answer; on the full path the server transaction resends it.
The traceback stays in the log; the PBX goes on serving."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pbx.sip.events import RequestReceived
from tests.integration.recorded_pbx import (
    WiredPbx,
    header,
    request,
    start,
    status_line,
    stop,
)

SERVER_ERROR = "SIP/2.0 500 Server Internal Error"


@pytest.fixture
async def full(tmp_path: Path) -> AsyncIterator[WiredPbx]:
    pbx = await start(tmp_path / "full", lane=True)  # the lane takes REGISTERs only
    try:
        yield pbx
    finally:
        await stop(pbx)


def _locked(*args: object, **kwargs: object) -> object:
    raise sqlite3.OperationalError("database is locked")


def _bug(ev: RequestReceived) -> None:
    raise RuntimeError("handler bug")


async def test_register_whose_store_raises_gets_500_then_the_pbx_goes_on(
    wired: WiredPbx, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert wired.pbx.store is not None
    challenged = wired.answer(request("REGISTER", "f1", 1))
    assert challenged.startswith(b"SIP/2.0 401 ")
    registering = request("REGISTER", "f2", 2, extra=(wired.authorization(),))
    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR):
        patch.setattr(wired.pbx.store, "apply_registration", _locked)
        failed = wired.answer(registering)
        assert status_line(failed) == SERVER_ERROR
        assert header(failed, "CSeq") == "2 REGISTER"
        assert header(failed, "Call-ID") == "call-f2@phone"
        assert header(failed, "To").startswith("<sip:1001@pbx.example>;tag=")
        assert "received=127.0.0.1" in header(failed, "Via")
        assert wired.answer(registering) == failed, "a retransmission gets the same 500"
    assert "database is locked" in caplog.text and "Traceback" in caplog.text
    assert wired.bindings() == [] and wired.changes == []
    if wired.lane is not None:
        assert (wired.lane.answered, wired.lane.resent) == (2, 1)
    wired.registered("f3")
    assert [b.contact for b in wired.bindings()] == ["sip:1001@192.168.1.10:5060"]


@pytest.mark.parametrize("method", ["OPTIONS", "INVITE", "MESSAGE"])
async def test_full_path_handler_that_raises_gets_500(
    full: WiredPbx,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    monkeypatch.setattr(full.pbx, "_on_request", _bug)
    sent = request(method, "h1")
    with caplog.at_level(logging.ERROR):
        answers = full.feed(sent)
    assert [status_line(a) for a in answers] == [SERVER_ERROR]
    assert header(answers[0], "CSeq") == f"1 {method}"
    assert header(answers[0], "To").startswith("<sip:1001@pbx.example>;tag=")
    assert "event handler failed" in caplog.text and "handler bug" in caplog.text
    assert full.feed(sent) == answers, "the server transaction resends its 500"


async def test_handler_that_raises_keeps_the_to_tag_of_an_in_dialog_request(
    full: WiredPbx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(full.pbx, "_on_request", _bug)
    answer = full.answer(request("INFO", "h2", 5, to_tag="dlg-7"))
    assert status_line(answer) == SERVER_ERROR
    assert header(answer, "To") == "<sip:1001@pbx.example>;tag=dlg-7"


async def test_ack_whose_handler_raises_gets_no_answer(
    full: WiredPbx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(full.pbx, "_on_request", _bug)
    assert full.feed(request("ACK", "h3", to_tag="t1")) == []


async def test_handler_that_answered_before_raising_sends_nothing_more(
    full: WiredPbx, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer_then_fail = full.pbx._on_request

    def handler(ev: RequestReceived) -> None:
        answer_then_fail(ev)
        raise RuntimeError("bug after the answer")

    monkeypatch.setattr(full.pbx, "_on_request", handler)
    answers = full.feed(request("OPTIONS", "h4"))
    assert [status_line(a) for a in answers] == ["SIP/2.0 200 OK"]


async def test_pbx_keeps_serving_after_a_handler_failure(
    full: WiredPbx, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(full.pbx, "_on_request", _bug)
        assert status_line(full.answer(request("OPTIONS", "h5"))) == SERVER_ERROR
    assert status_line(full.answer(request("OPTIONS", "h6"))) == "SIP/2.0 200 OK"
