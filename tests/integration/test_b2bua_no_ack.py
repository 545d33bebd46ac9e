"""A caller that never ACKs the 200: the PBX re-sends the 200, then ends the call (RFC 3261
§13.3.1.4: after 64*T1 without ACK the UAS core sends BYE), on both legs, with a CDR.

The caller is a raw UDP socket answering the digest challenge itself (SIPp always ACKs).
"""

from __future__ import annotations

import socket
import time

import pytest

from pbx.sip.digest_client import DigestClient
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.timers import TimerConfig
from pbx.store import Disposition, HangupSide
from tests.integration.pbx_harness import PASSWORDS, start_pbx
from tests.integration.ports import free_port
from tests.integration.test_b2bua_support import callee, needs_sipp, register

pytestmark = [pytest.mark.integration, needs_sipp]

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5, d_unreliable=0.5)  # no ACK for 3.2 s -> BYE


def invite(port: int, pbx_port: int, cseq: int, auth: str | None = None) -> bytes:
    body = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port + 2} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    )
    headers = [
        f"INVITE sip:1002@127.0.0.1:{pbx_port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-noack-{cseq};rport",
        "Max-Forwards: 70",
        "From: <sip:1001@127.0.0.1>;tag=noack",
        "To: <sip:1002@127.0.0.1>",
        "Call-ID: no-ack-call@test",
        f"CSeq: {cseq} INVITE",
        f"Contact: <sip:1001@127.0.0.1:{port}>",
        "Content-Type: application/sdp",
        *([f"Proxy-Authorization: {auth}"] if auth else []),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def receive(sock: socket.socket, deadline: float) -> Request | Response | None:
    while time.monotonic() < deadline:
        try:
            return parse_message(sock.recv(65535))
        except TimeoutError:
            continue
    return None


def test_a_200_never_acked_is_resent_then_both_legs_get_bye(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", timers=FAST)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        phone_port = free_port()
        assert register(pbx, tmp_path, "1002", phone_port).ok
        answering = callee(tmp_path, "uas_answer.xml", phone_port)  # passes only with a BYE
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.1)
        port, target = sock.getsockname()[1], ("127.0.0.1", pbx.port)
        sock.sendto(invite(port, pbx.port, 1), target)
        deadline = time.monotonic() + 5
        challenge = receive(sock, deadline)
        while isinstance(challenge, Response) and challenge.status == 100:
            challenge = receive(sock, deadline)
        assert isinstance(challenge, Response) and challenge.status == 407
        # (the 407 is left un-ACKed too: its transaction simply times out)
        values = challenge.headers.getall("Proxy-Authenticate")
        client = DigestClient("1001", PASSWORDS["1001"])
        auth = client.authorization(values, "INVITE", f"sip:1002@127.0.0.1:{pbx.port}")
        sock.sendto(invite(port, pbx.port, 2, auth), target)
        oks, bye, deadline = 0, None, time.monotonic() + 10
        while bye is None and time.monotonic() < deadline:
            message = receive(sock, deadline)
            if isinstance(message, Response) and message.status == 200:
                oks += 1
            elif isinstance(message, Request) and message.method == "BYE":
                bye = message
                sock.sendto(bytes(message.make_response(200)), target)
        assert bye is not None, "no BYE after the 200 went un-ACKed"
        assert oks >= 5  # T1, 2T1, 4T1, T2, T2, ... until 64*T1
        callee_result = answering.wait()
        assert callee_result.ok, callee_result.log
        [cdr] = pbx.wait_cdrs(1)
        assert (cdr.disposition, cdr.hangup_side) == (Disposition.ANSWERED, HangupSide.SYSTEM)
        assert 2.5 < cdr.billsec < 6
    finally:
        sock.close()
        pbx.stop()
