"""Call control through the HTTP API on a real PBX with SIPp phones on 127.0.0.1.

Click-to-call rings the first phone with the caller ID asked for, then
connects the second; the webhook sees ringing, answered and ended in order
and the CDR names both extensions and the X- headers. A connected call
receives DTMF as SIP INFO, is transferred blind to a third phone, and is
hung up by the API (hangup side "system"); a ringing one is cancelled.
"""

from __future__ import annotations

import json
import re
import time
import wave
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from tests.integration import test_api
from tests.integration.peers.sipp import SIPP, Sipp, SippResult, auth_field, scenario, write_csv
from tests.integration.ports import free_port
from tests.integration.test_api import Receiver, Running
from tests.integration.test_pbx_sipp import PASSWORDS, register

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(SIPP is None, reason="sipp not installed (Debian package sip-tester)"),
]
SCENARIOS = Path(__file__).parent / "sipp"
running = test_api.running  # a PBX with its HTTP API and a token
receiver = test_api.receiver  # a webhook receiver
PLAIN_INVITE = '<recv request="INVITE" crlf="true"/>'
BYE = '<recv request="BYE"/>'


def _checked_invite(regexp: str) -> str:
    return (
        '<recv request="INVITE" crlf="true"><action>'
        f'<ereg regexp="{escape(regexp, {chr(34): "&quot;"})}" search_in="hdr" header="From:" '
        'check_it="true" '
        'assign_to="from_checked"/></action></recv>'
    )


def _info_then_bye(digits: str) -> str:
    steps = []
    for digit in digits:
        steps.append(
            '<recv request="INFO"><action>'
            f'<ereg regexp="Signal={digit}" search_in="body" check_it="true" '
            f'assign_to="digit_{ord(digit)}"/></action></recv>'
            "<send><![CDATA[\n\n      SIP/2.0 200 OK\n      [last_Via:]\n      [last_From:]\n"
            "      [last_To:]\n      [last_Call-ID:]\n      [last_CSeq:]\n"
            "      Content-Length: 0\n\n    ]]></send>"
        )
    return "".join(steps) + BYE


def phone(tmp_path: Path, api: Running, number: str, *, from_regexp: str | None = None,
          dtmf: str = "", name: str = "uas_answer.xml") -> Sipp:  # fmt: skip
    """A registered SIPp phone that rings, answers and waits for BYE (checks optional)."""
    text = (SCENARIOS / name).read_text()
    if from_regexp is not None:
        text = text.replace(PLAIN_INVITE, _checked_invite(from_regexp))
    if dtmf:
        text = text.replace(BYE, _info_then_bye(dtmf))
    names = re.findall(r'assign_to="(\w+)"', text)
    if names:  # SIPp refuses a scenario that assigns a variable it never uses
        text = text.replace("</scenario>", f'<Reference variables="{",".join(names)}"/></scenario>')
    path = tmp_path / f"phone-{number}.xml"
    path.write_text(text)
    port = free_port()
    assert register(api.pbx, tmp_path, number, port).ok
    return Sipp(path, None, local_port=port, media_port=free_port(step=4), calls=1, timeout=20,
                extra=("-aa",), workdir=tmp_path).start()  # fmt: skip


def wait_state(api: Running, label: str, state: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        status, call = api.http.json("GET", f"/api/v1/calls/{label}")
        seen = call.get("state") if status == 200 else None
        if seen == state:
            return call
        time.sleep(0.05)
    raise AssertionError(f"call {label} is {seen}, never {state}")


def originate(api: Running, **extra: object) -> str:
    body = {"from": "1001", "to": "1002", **extra}
    status, answer = api.http.json("POST", "/api/v1/calls", body)
    assert status == 202, answer
    return answer["label"]


def assert_ok(*results: SippResult) -> None:
    for result in results:
        assert result.ok, result.log[-3000:]


def test_click_to_call_shows_caller_id_and_reports_in_order(
    running: Running,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    status, _ = running.http.json("POST", "/api/v1/webhooks", {"url": receiver.url})
    assert status == 201
    first = phone(tmp_path, running, "1001", from_regexp='"CRM" <sip:1002@')
    second = phone(tmp_path, running, "1002", from_regexp="<sip:1001@")
    label = originate(running, caller_id="CRM", x_headers={"X-Crm-Id": "4711"})
    call = wait_state(running, label, "connected")
    assert (call["caller"], call["callee"]) == ("1001", "1002")
    time.sleep(0.5)
    assert running.http.request("DELETE", f"/api/v1/calls/{label}")[0] == 204
    assert_ok(first.wait(), second.wait())
    events = receiver.wait_for(3)
    assert [h["X-DeskPBX-Event"] for h, _ in events] == [
        "call.ringing", "call.answered", "call.ended"
    ]  # fmt: skip
    cdr = json.loads(events[-1][1])["data"]["cdr"]
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "1002", "ANSWERED")
    assert (cdr["hangup_side"], cdr["sip_code"]) == ("system", 200)
    assert cdr["x_headers"] == {"X-Crm-Id": "4711"}
    assert 0.4 <= cdr["billsec"] <= 5
    for side in ("caller", "callee"):  # both phones play audio; the relay measured it
        quality = cdr["media_stats"][side]["quality"]
        assert quality["packets"] > 0 and quality["loss_pct"] == 0.0, (side, quality)
        assert 1.0 <= quality["mos"] <= 4.5


def test_without_caller_id_the_first_phone_sees_the_number_called(
    running: Running,
    tmp_path: Path,
) -> None:
    first = phone(tmp_path, running, "1001", from_regexp="^ *<sip:1002@")
    second = phone(tmp_path, running, "1002")
    label = originate(running)
    wait_state(running, label, "connected")
    assert running.http.request("DELETE", f"/api/v1/calls/{label}")[0] == 204
    assert_ok(first.wait(), second.wait())


def test_dtmf_reaches_the_callee_as_sip_info(running: Running, tmp_path: Path) -> None:
    first = phone(tmp_path, running, "1001")
    second = phone(tmp_path, running, "1002", dtmf="5#")
    label = originate(running)
    wait_state(running, label, "connected")
    status, body = running.http.json(
        "POST", f"/api/v1/calls/{label}/dtmf", {"digits": "5#", "duration_ms": 60}
    )
    assert status == 202, body
    time.sleep(0.6)
    assert running.http.request("DELETE", f"/api/v1/calls/{label}")[0] == 204
    assert_ok(first.wait(), second.wait())


def test_blind_transfer_moves_the_caller_to_a_third_phone(
    running: Running,
    tmp_path: Path,
) -> None:
    first = phone(tmp_path, running, "1001")
    second = phone(tmp_path, running, "1002")
    third = phone(tmp_path, running, "1003")
    label = originate(running, x_headers={"X-Ticket": "T-9"})
    wait_state(running, label, "connected")
    status, body = running.http.json("POST", f"/api/v1/calls/{label}/transfer", {"target": "1003"})
    assert status == 202, body
    assert_ok(second.wait())  # leg B ended with BYE
    deadline = time.monotonic() + 10
    call = {}
    while time.monotonic() < deadline:
        _, call = running.http.json("GET", f"/api/v1/calls/{label}")
        if call["callee"] == "1003" and call["legs"][1]["peer"] is not None:
            break
        time.sleep(0.05)
    assert call["callee"] == "1003" and call["state"] == "connected"
    assert running.http.request("DELETE", f"/api/v1/calls/{label}")[0] == 204
    assert_ok(first.wait(), third.wait())
    _, page = running.http.json("GET", "/api/v1/cdrs?x_header=X-Ticket:T-9")
    [cdr] = page["items"]
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "1003", "ANSWERED")


def test_api_errors_for_calls_not_in_that_state(running: Running, tmp_path: Path) -> None:
    http = running.http
    status, body = http.json("POST", "/api/v1/calls", {"from": "1001", "to": "1002"})
    assert status == 409 and "no registered phone" in body["detail"]
    ringing = phone(tmp_path, running, "1001", name="uas_ring.xml")
    status, body = http.json("POST", "/api/v1/calls", {"from": "1001", "to": "1999"})
    assert status == 404 and "1999" in body["detail"]
    label = originate(running)
    wait_state(running, label, "ringing")
    status, body = http.json("POST", f"/api/v1/calls/{label}/transfer", {"target": "1003"})
    assert status == 409, body
    status, body = http.json("POST", f"/api/v1/calls/{label}/dtmf", {"digits": "1"})
    assert status == 409, body
    assert http.request("DELETE", f"/api/v1/calls/{label}")[0] == 204
    ringing.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not running.pbx.cdrs():
        time.sleep(0.05)
    [cdr] = running.pbx.cdrs()
    assert (cdr.caller, cdr.callee, cdr.answer) == ("1001", "1002", None)
    assert cdr.disposition.value == "CANCELLED" and cdr.hangup_side.value == "system"


def test_recording_started_and_stopped_by_the_api_is_linked_from_the_cdr(
    running: Running, tmp_path: Path
) -> None:
    first = phone(tmp_path, running, "1001")
    second = phone(tmp_path, running, "1002")
    label = originate(running, x_headers={"X-Rec": "api"})
    wait_state(running, label, "connected")
    status, body = running.http.json("POST", f"/api/v1/calls/{label}/recording")
    assert (status, body["recording"]) == (202, True)
    time.sleep(1.0)
    status, body = running.http.json("DELETE", f"/api/v1/calls/{label}/recording")
    assert (status, body["recording"]) == (202, False)
    assert running.http.request("DELETE", f"/api/v1/calls/{label}")[0] == 204
    assert_ok(first.wait(), second.wait())
    _, page = running.http.json("GET", "/api/v1/cdrs?x_header=X-Rec:api")
    [cdr] = page["items"]
    path = Path(cdr["recording"])
    assert path.is_relative_to(running.pbx.data_dir / "recordings") and path.exists()
    with wave.open(str(path), "rb") as reader:
        assert reader.getnchannels() == 2
        assert 0.8 * 8000 <= reader.getnframes() <= 1.5 * 8000  # only the recorded second


def test_a_ringing_call_hung_up_by_the_api_gets_480_and_cancels_the_callee(
    running: Running, tmp_path: Path
) -> None:
    ringing = phone(tmp_path, running, "1002", name="uas_ring.xml")
    rows = [["1001", auth_field("1001", PASSWORDS["1001"]), "1002"]]
    rejected = scenario("uac_rejected.xml", tmp_path, EXPECTED_CODE="480")
    caller = Sipp(rejected, running.pbx.address, local_port=free_port(),
                  media_port=free_port(step=4), inject=write_csv(rows, tmp_path), timeout=20,
                  workdir=tmp_path).start()  # fmt: skip
    deadline = time.monotonic() + 10
    calls: list[dict] = []
    while time.monotonic() < deadline and not calls:
        _, body = running.http.json("GET", "/api/v1/calls")
        calls = [c for c in body["items"] if c["state"] == "ringing"]
        time.sleep(0.05)
    [call] = calls
    assert running.http.request("DELETE", f"/api/v1/calls/{call['label']}")[0] == 204
    assert_ok(caller.wait(), ringing.wait())
    [cdr] = running.pbx.wait_cdrs(1)
    assert (cdr.sip_code, cdr.disposition.value, cdr.hangup_side.value) == (
        480, "CANCELLED", "system"
    )  # fmt: skip
