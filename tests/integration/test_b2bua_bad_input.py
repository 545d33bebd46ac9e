"""Bad input never takes the B2BUA down: each gets its SIP answer and the PBX carries on.

A malformed SDP offer (400), an offer without audio (488), a callee whose
only contact is unreachable (480, and nothing is sent to it), a CANCEL that
matches no transaction and in-dialog requests for a dialog that does not
exist (481, RFC 3261 sections 9.2 and 12.2.2), and datagrams that are not
SIP at all. After all of it a normal call still works and gets its CDR.
"""

from __future__ import annotations

import itertools
import socket
import time

import pytest

from pbx.store import Disposition
from tests.integration.pbx_harness import RunningPbx, start_pbx
from tests.integration.ports import free_port
from tests.integration.test_b2bua_support import (
    MediaSocket,
    callee,
    caller,
    needs_sipp,
    register,
)

pytestmark = [pytest.mark.integration]

_numbers = itertools.count(1)


@pytest.fixture
def pbx(tmp_path):
    running = start_pbx(tmp_path / "pbx")
    yield running
    running.stop()


def exchange(pbx: RunningPbx, request: str, timeout: float = 3.0) -> str | None:
    """Send one request over UDP; the first final response's text, or None within `timeout`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        text = request.replace("LOCAL_PORT", str(sock.getsockname()[1]))
        sock.sendto(text.replace("\n", "\r\n").encode(), ("127.0.0.1", pbx.port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65535).decode()
            except TimeoutError:
                continue
            if not data.startswith("SIP/2.0 1"):
                return data
    return None


def request(method: str, pbx: RunningPbx, *, to_tag: str | None = None, cseq: int = 1,
            body: str = "", content_type: str | None = None) -> str:  # fmt: skip
    n = next(_numbers)
    to = "<sip:1002@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    headers = [
        f"{method} sip:1002@127.0.0.1:{pbx.port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:LOCAL_PORT;branch=z9hG4bK-bad-{n}-{time.monotonic_ns()};rport",
        "Max-Forwards: 70",
        f"From: <sip:1001@127.0.0.1>;tag=from-{n}",
        f"To: {to}",
        f"Call-ID: bad-input-{n}-{time.monotonic_ns()}@test",
        f"CSeq: {cseq} {method}",
        "Contact: <sip:1001@127.0.0.1:LOCAL_PORT>",
    ]
    if content_type:
        headers.append(f"Content-Type: {content_type}")
    headers.append(f"Content-Length: {len(body.encode())}")
    return "\n".join(headers) + "\n\n" + body


def status_of(response: str | None) -> int | None:
    return None if response is None else int(response.split(" ", 2)[1])


def test_cancel_for_an_unknown_transaction_gets_481(pbx):
    assert status_of(exchange(pbx, request("CANCEL", pbx))) == 481


@pytest.mark.parametrize(
    ("method", "body", "content_type"),
    [
        ("BYE", "", None),
        ("INFO", "Signal=1\nDuration=100\n", "application/dtmf-relay"),
        ("INVITE", "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
                   "m=audio 4000 RTP/AVP 8\n", "application/sdp"),
        ("UPDATE", "", None),
    ],
)  # fmt: skip
def test_in_dialog_request_for_an_unknown_dialog_gets_481(pbx, method, body, content_type):
    text = request(method, pbx, to_tag="no-such-dialog", cseq=7, body=body,
                   content_type=content_type)  # fmt: skip
    assert status_of(exchange(pbx, text)) == 481
    assert pbx.run(lambda: pbx.pbx.b2bua.table_sizes()["calls"]) == 0


@pytest.mark.parametrize("method", ["BYE", "INFO", "UPDATE"])
def test_dialog_only_request_without_a_to_tag_gets_481(pbx, method):
    assert status_of(exchange(pbx, request(method, pbx))) == 481


def test_datagrams_that_are_not_sip_leave_the_pbx_answering(pbx):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (b"\x00\xff" * 40, b"INVITE\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n", b"\r\n"):
            sock.sendto(junk, ("127.0.0.1", pbx.port))
    truncated = request("INVITE", pbx).split("Call-ID")[0]
    exchange(pbx, truncated, timeout=0.5)
    assert status_of(exchange(pbx, request("OPTIONS", pbx))) == 200
    assert pbx.cdrs() == []


@needs_sipp
def test_malformed_sdp_gets_400_and_leaves_no_cdr(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1002", port).ok
    result = caller(pbx, tmp_path, "uac_bad_sdp.xml", "1001", "1002", EXPECTED_CODE="400").wait()
    assert result.ok, result.log
    assert pbx.cdrs() == []
    assert pbx.run(pbx.pbx.b2bua.table_sizes)["calls"] == 0
    # The PBX carries on: a good call to the same phone works and gets the only CDR.
    answering = callee(tmp_path, "uas_answer.xml", port)
    good = caller(pbx, tmp_path, "uac_call.xml", "1001", "1002", pause_ms=300).wait()
    assert good.ok, good.log
    assert answering.wait().ok
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code, cdr.callee) == (Disposition.ANSWERED, 200, "1002")


@needs_sipp
def test_offer_without_audio_gets_488(pbx, tmp_path):
    assert register(pbx, tmp_path, "1002", free_port()).ok
    result = caller(pbx, tmp_path, "uac_bad_sdp.xml", "1001", "1002", EXPECTED_CODE="488",
                    **{"m=audio notaport": "m=video [media_port]"}).wait()  # fmt: skip
    assert result.ok, result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.FAILED, 488)
    assert pbx.run(lambda: pbx.pbx.relay.open_sessions) == 0


@needs_sipp
def test_callee_with_only_unreachable_contacts_gets_480_and_no_invite(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1007", port).ok
    store = pbx.pbx.store
    pbx.run(lambda: store.mark_qualified("1007", f"sip:1007@127.0.0.1:{port}", False,
                                         pbx.pbx.wall()))  # fmt: skip
    [binding] = pbx.run(lambda: store.active_bindings(pbx.pbx.wall(), "1007"))
    assert binding.reachable is False
    phone = MediaSocket(port)  # stands where the phone was: nothing may arrive
    try:
        result = caller(pbx, tmp_path, "uac_rejected.xml", "1001", "1007",
                        EXPECTED_CODE="480").wait()  # fmt: skip
        assert result.ok, result.log
        assert phone.collect(0.3) == []
    finally:
        phone.close()


@needs_sipp
def test_offer_with_a_host_name_for_its_media_address_gets_488(pbx, tmp_path):
    """RFC 8866 allows an FQDN in c=; the relay needs an IP literal, so the call fails cleanly."""
    assert register(pbx, tmp_path, "1002", free_port()).ok
    result = caller(pbx, tmp_path, "uac_bad_sdp.xml", "1001", "1002", EXPECTED_CODE="488",
                    timeout=8, **{"m=audio notaport": "m=audio [media_port]",
                                  "c=IN IP[media_ip_type] [media_ip]": "c=IN IP4 phone.invalid"},
                    ).wait()  # fmt: skip
    assert result.ok, result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.FAILED, 488)
    assert pbx.run(pbx.pbx.b2bua.table_sizes)["calls"] == 0
    assert pbx.run(lambda: pbx.pbx.relay.open_sessions) == 0
