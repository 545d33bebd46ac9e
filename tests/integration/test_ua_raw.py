"""The user agent answering a hand-written peer on 127.0.0.1 (raw UDP, no PBX).

Shows what the SIPp and UA tests cannot easily reach: an INVITE without SDP
(the offer goes in our 200, the answer comes in the ACK, RFC 3261 13.2.1),
and a 200 that is resent until the ACK comes and given up with BYE after
64*T1 when it never does (13.3.1.4).
"""

from __future__ import annotations

import asyncio

import pytest

from pbx.media.rtp import RtpPacket
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.sdp import SessionDescription
from pbx.sip.timers import TimerConfig
from pbx.ua import CallState, HoldChanged, IncomingCall, RegistrationState
from tests.integration.ports import free_port
from tests.integration.test_ua_support import start_phone

pytestmark = pytest.mark.integration


class RawPeer(asyncio.DatagramProtocol):
    """A UDP socket collecting parsed SIP messages (or raw datagrams)."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.inbox.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    async def next_message(self, timeout: float = 3.0) -> Request | Response:
        data, _ = await asyncio.wait_for(self.inbox.get(), timeout)
        return parse_message(data)

    async def next_response(self, status: int, timeout: float = 3.0) -> Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.next_message(max(0.01, deadline - loop.time()))
            if isinstance(message, Response) and message.status == status:
                return message


async def open_peer() -> RawPeer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(RawPeer, local_addr=("127.0.0.1", 0))
    return peer


def invite(peer: RawPeer, ua_port: int, body: bytes = b"") -> bytes:
    headers = (
        f"INVITE sip:1002@127.0.0.1:{ua_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-raw-1;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:9999@127.0.0.1>;tag=raw1\r\n"
        "To: <sip:1002@127.0.0.1>\r\n"
        "Call-ID: raw-late-offer@test\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:9999@127.0.0.1:{peer.port}>\r\n"
    )
    if body:
        headers += "Content-Type: application/sdp\r\n"
    return f"{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


def in_dialog(method: str, peer: RawPeer, ua_port: int, ok: Response, seq: int, body: bytes = b""):
    to = ok.headers.get("To")
    headers = (
        f"{method} sip:1002@127.0.0.1:{ua_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch=z9hG4bK-raw-{method}-{seq}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:9999@127.0.0.1>;tag=raw1\r\n"
        f"To: {to}\r\n"
        "Call-ID: raw-late-offer@test\r\n"
        f"CSeq: {seq} {method}\r\n"
    )
    if body:
        headers += "Content-Type: application/sdp\r\n"
    return f"{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def test_an_invite_without_sdp_gets_our_offer_and_its_ack_carries_the_answer():
    bob = await start_phone("1002", free_port())
    peer, rtp = await open_peer(), await open_peer()
    try:
        assert peer.transport is not None
        port = bob.ua.local_port
        peer.transport.sendto(invite(peer, port), ("127.0.0.1", port))
        await peer.next_response(180)
        incoming = await bob.wait_event(IncomingCall)
        assert incoming.remote_uri == "sip:9999@127.0.0.1"
        await incoming.call.answer()
        ok = await peer.next_response(200)
        offer = SessionDescription.parse(ok.body)
        assert [f.fmt for f in offer.media[0].formats] == ["0", "8", "101"]
        assert incoming.call.negotiated is None  # nothing agreed before the ACK
        answer = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp.port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n"
        ).encode()
        peer.transport.sendto(in_dialog("ACK", peer, port, ok, 1, answer), ("127.0.0.1", port))
        data, _ = await asyncio.wait_for(rtp.inbox.get(), 2.0)
        assert RtpPacket.parse(data).payload_type == 8  # PCMA, as the ACK's answer says
        negotiated = incoming.call.negotiated
        assert negotiated is not None and negotiated.remote_port == rtp.port
        # A re-INVITE without SDP: our 200 offers again, the ACK's sendonly answer holds us.
        peer.transport.sendto(in_dialog("INVITE", peer, port, ok, 2), ("127.0.0.1", port))
        again = await peer.next_response(200)
        assert SessionDescription.parse(again.body).media[0].port == incoming.call.session.port
        held = answer.replace(b"a=rtpmap:8", b"a=sendonly\r\na=rtpmap:8")
        peer.transport.sendto(in_dialog("ACK", peer, port, again, 2, held), ("127.0.0.1", port))
        await bob.wait_event(HoldChanged, lambda e: e.remote)
        assert incoming.call.state is CallState.ON_HOLD
        peer.transport.sendto(in_dialog("BYE", peer, port, ok, 3), ("127.0.0.1", port))
        await peer.next_response(200)
        assert await incoming.call.wait_for(CallState.ENDED, timeout=3) is CallState.ENDED
    finally:
        await bob.ua.aclose()
        for socket in (peer, rtp):
            assert socket.transport is not None
            socket.transport.close()


async def test_an_unacknowledged_200_is_resent_then_given_up_with_bye():
    bob = await start_phone("1002", free_port(), timers=TimerConfig(t1=0.05, t2=0.4))
    peer = await open_peer()
    try:
        assert peer.transport is not None
        port = bob.ua.local_port
        offer = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {free_port()} RTP/AVP 0\r\n"
        ).encode()
        peer.transport.sendto(invite(peer, port, offer), ("127.0.0.1", port))
        incoming = await bob.wait_event(IncomingCall)
        await incoming.call.answer()
        oks, bye = 0, None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 6.0  # 64 * T1 = 3.2 s
        while bye is None and loop.time() < deadline:
            message = await peer.next_message(timeout=deadline - loop.time())
            if isinstance(message, Response) and message.status == 200:
                oks += 1
            elif isinstance(message, Request) and message.method == "BYE":
                bye = message
        assert bye is not None and oks >= 5  # 0.05, 0.15, 0.35, 0.75, 1.15 ... s
        assert incoming.call.status == 408 and incoming.call.state is not CallState.CONNECTED
    finally:
        await bob.ua.aclose()
        peer.transport.close()


async def test_a_302_is_followed_to_its_contact():
    nowhere = free_port()
    alice = await start_phone("1001", nowhere)
    bob = await start_phone("1002", nowhere)
    peer = await open_peer()
    try:
        assert peer.transport is not None
        call = await alice.ua.call(f"sip:1009@127.0.0.1:{peer.port}")
        first = await peer.next_message()
        assert isinstance(first, Request) and first.method == "INVITE"
        moved = first.make_response(
            302, to_tag="moved1", headers=[("Contact", f"<sip:1002@127.0.0.1:{bob.ua.local_port}>")]
        )
        peer.transport.sendto(bytes(moved), ("127.0.0.1", alice.ua.local_port))
        ack = await peer.next_message()
        assert isinstance(ack, Request) and ack.method == "ACK"  # the 3xx is acknowledged
        incoming = await bob.wait_event(IncomingCall)
        assert incoming.call.call_id == first.call_id  # same Call-ID, next CSeq (8.1.3.4)
        assert incoming.call.invite is not None and incoming.call.invite.cseq.seq == 2
        await incoming.call.answer()
        assert await call.wait_for(CallState.CONNECTED, timeout=5) is CallState.CONNECTED
        assert call.remote_uri == f"sip:1002@127.0.0.1:{bob.ua.local_port}"
        await call.hangup()
    finally:
        await alice.ua.aclose()
        await bob.ua.aclose()
        peer.transport.close()


async def test_behind_a_nat_the_contact_becomes_the_address_the_registrar_saw():
    registrar = await open_peer()
    alice = await start_phone("1001", registrar.port)
    try:
        assert registrar.transport is not None
        task = asyncio.ensure_future(alice.ua.register(expires=120))
        contacts = []
        for _ in range(2):
            request = await registrar.next_message()
            assert isinstance(request, Request) and request.method == "REGISTER"
            contacts.append(request.headers.getall("Contact"))
            ok = request.make_response(200, to_tag="reg1", headers=[("Expires", "120")])
            via = ok.headers.get("Via") or ""
            ok.headers.set("Via", via.replace(";rport", ";rport=40001;received=203.0.113.7", 1))
            registrar.transport.sendto(bytes(ok), ("127.0.0.1", alice.ua.local_port))
        event = await asyncio.wait_for(task, 3)
        private = f"<sip:1001@127.0.0.1:{alice.ua.local_port}>"
        assert contacts[0] == [f"{private};expires=120"]
        assert contacts[1] == ["<sip:1001@203.0.113.7:40001>;expires=120", f"{private};expires=0"]
        assert (event.state, event.expires) == (RegistrationState.REGISTERED, 120)
        assert alice.ua.contact == "<sip:1001@203.0.113.7:40001>"
        assert registrar.inbox.empty()  # once learned, no more re-registering
    finally:
        alice.ua.registration.close()
        alice.ua.registration.state = RegistrationState.UNREGISTERED  # no unregister to a fake
        await alice.ua.aclose()
        assert registrar.transport is not None
        registrar.transport.close()


def _out_of_dialog(method: str, peer: RawPeer, ua_port: int, branch: str, cseq: str) -> bytes:
    return (
        f"{method} sip:1002@127.0.0.1:{ua_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{peer.port};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:9999@127.0.0.1>;tag=raw-cancel\r\n"
        "To: <sip:1002@127.0.0.1>\r\n"
        "Call-ID: raw-cancel@test\r\n"
        f"CSeq: {cseq}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def test_a_cancel_of_an_answered_options_gets_200_and_a_stray_one_481():
    """RFC 3261 9.2: the CANCEL matches the OPTIONS transaction (kept 64*T1 after its 200)
    whatever its method, so it is answered 200 and nothing else happens."""
    bob = await start_phone("1002", free_port())
    peer = await open_peer()
    try:
        assert peer.transport is not None
        port, to = bob.ua.local_port, ("127.0.0.1", bob.ua.local_port)
        peer.transport.sendto(_out_of_dialog("OPTIONS", peer, port, "z9hG4bK-opt", "1 OPTIONS"), to)
        assert (await peer.next_message()).status == 200
        peer.transport.sendto(_out_of_dialog("CANCEL", peer, port, "z9hG4bK-opt", "1 CANCEL"), to)
        answer = await peer.next_message()
        assert answer.status == 200 and answer.cseq.method == "CANCEL"
        peer.transport.sendto(_out_of_dialog("CANCEL", peer, port, "z9hG4bK-none", "1 CANCEL"), to)
        assert (await peer.next_message()).status == 481
        assert bob.ua.calls == []
    finally:
        await bob.ua.aclose()
        peer.transport.close()
