"""pbx.call: which failure reaches the caller, how outcomes map to CDR dispositions, CDR rows."""

from __future__ import annotations

import ipaddress

import pytest

from pbx.call import (
    Call,
    CallState,
    Fork,
    Peer,
    Side,
    best_final,
    disposition_for,
    fork_invite,
    sdp_of,
)
from pbx.media.relay import Leg, LocalPorts
from pbx.sip.dialog import LocalEndpoint
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.sdp import SessionDescription
from pbx.sip.transaction import ClientKey
from pbx.store import Binding, Disposition, HangupSide

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 8\r\n"
)


def responses(*statuses: int) -> list[Response]:
    return [Response(status) for status in statuses]


@pytest.mark.parametrize(
    ("statuses", "chosen"),
    [
        ((), None),
        ((404,), 404),
        ((480, 486, 404), 486),  # busy beats other 4xx: the most useful news for a caller
        ((404, 603, 486), 603),  # 6xx is final for the whole call (RFC 3261 16.7 step 6)
        ((600, 603), 600),  # the first 6xx
        ((503, 480), 480),  # the lowest class wins
        ((488, 415, 480), 415),  # then the lowest code within the class
        ((302, 404), 302),
        ((500, 502), 500),
    ],
)
def test_best_final(statuses, chosen):
    best = best_final(responses(*statuses))
    assert (best.status if best is not None else None) == chosen


def test_best_final_returns_one_of_the_responses_it_was_given():
    given = responses(486, 486)
    assert best_final(given) is given[0]


@pytest.mark.parametrize(
    ("status", "disposition"),
    [
        (200, Disposition.ANSWERED),
        (202, Disposition.ANSWERED),
        (486, Disposition.BUSY),
        (600, Disposition.BUSY),
        (603, Disposition.BUSY),  # Decline: FreePBX reports a rejected call as BUSY
        (408, Disposition.NO_ANSWER),
        (480, Disposition.NO_ANSWER),
        (487, Disposition.CANCELLED),
        (404, Disposition.FAILED),
        (488, Disposition.FAILED),
        (503, Disposition.FAILED),
        (302, Disposition.FAILED),
    ],
)
def test_disposition_for(status, disposition):
    assert disposition_for(status) is disposition


def make_call(**overrides) -> Call:  # type: ignore[no-untyped-def]
    invite = Request(
        "INVITE",
        "sip:1002@127.0.0.1",
        [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1"),
            ("From", "<sip:1001@127.0.0.1>;tag=a"),
            ("To", "<sip:1002@127.0.0.1>"),
            ("Call-ID", "call-1@test"),
            ("CSeq", "1 INVITE"),
            ("Content-Type", "application/sdp"),
        ],
        OFFER,
    )
    local = LocalEndpoint("<sip:pbx@127.0.0.1:5060>", "127.0.0.1:5060", "UDP")
    values = dict(
        label="label",
        caller="1001",
        callee="1002",
        a_invite=invite,
        a_tx=ClientKey("z9hG4bK-1", "INVITE"),
        a_peer=Peer(("127.0.0.1", 5070), "UDP", local, "127.0.0.1"),
        a_tag="tag-a",
        a_offer=SessionDescription.parse(OFFER),
        start=1000.0,
        x_headers={"X-Call-Type": "sales"},
    )
    values.update(overrides)
    return Call(**values)  # type: ignore[arg-type]


def test_a_new_call_is_dialing_unanswered_and_its_other_side_is_known():
    call = make_call()
    assert call.state is CallState.DIALING
    assert not call.answered and not call.ended
    assert (Side.A.other, Side.B.other) == (Side.B, Side.A)
    assert call.dialog(Side.A) is None and call.peer(Side.B) is None
    assert call.peer(Side.A) is call.a_peer


def test_pending_forks_leave_out_answered_and_timed_out_ones():
    call = make_call()
    binding = Binding("1002", "sip:1002@127.0.0.1:5080", "127.0.0.1", 5080, "UDP", 2000.0)
    keys = [ClientKey(f"z9hG4bK-{i}", "INVITE") for i in range(3)]
    for key in keys:
        call.forks[key] = Fork(binding, call.a_invite, key, call.a_peer)
    call.forks[keys[0]].final = Response(486)
    call.forks[keys[1]].timed_out = True
    assert [f.tx for f in call.pending_forks()] == [keys[2]]


def test_cdr_of_an_answered_call():
    call = make_call()
    call.answer, call.end = 1002.5, 1010.0
    call.disposition, call.sip_code, call.sip_reason = Disposition.ANSWERED, 200, "OK"
    call.hangup_side = HangupSide.CALLEE
    cdr = call.to_cdr()
    assert (cdr.call_id, cdr.caller, cdr.callee) == ("call-1@test", "1001", "1002")
    assert (cdr.duration, cdr.billsec) == (10.0, 7.5)
    assert (cdr.disposition, cdr.sip_code, cdr.hangup_side) == (
        Disposition.ANSWERED, 200, HangupSide.CALLEE,
    )  # fmt: skip
    assert cdr.x_headers == {"X-Call-Type": "sales"}
    cdr.x_headers["X-Other"] = "1"
    assert call.x_headers == {"X-Call-Type": "sales"}  # the CDR holds a copy


def test_cdr_of_an_unanswered_call_bills_nothing():
    call = make_call()
    call.end, call.disposition, call.sip_code = 1004.0, Disposition.NO_ANSWER, 480
    cdr = call.to_cdr()
    assert (cdr.duration, cdr.billsec, cdr.answer) == (4.0, 0.0, None)
    assert cdr.hangup_side is HangupSide.SYSTEM


class RecordingRelay:
    """Stands in for a RelaySession: records set_remote and checks addresses like it does."""

    def __init__(self) -> None:
        self.remotes: list[tuple[Leg, str, int, int | None]] = []

    def set_remote(self, leg: Leg, host: str, rtp_port: int, rtcp_port: int | None = None) -> None:
        if ipaddress.ip_address(host).version != 4:  # raises ValueError for a host name too
            raise ValueError(f"leg {leg.value} is IPv4-only, got {host}")
        self.remotes.append((leg, host, rtp_port, rtcp_port))


def sdp(connection: str, port: int = 4000, extra: str = "") -> SessionDescription:
    text = (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc={connection}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8\r\n{extra}"
    )
    return SessionDescription.parse(text)


@pytest.mark.parametrize(
    ("description", "accepted", "remote"),
    [
        (sdp("IN IP4 192.0.2.7"), True, (Leg.B, "192.0.2.7", 4000, None)),
        (sdp("IN IP4 192.0.2.7", extra="a=rtcp:4009\r\n"), True, (Leg.B, "192.0.2.7", 4000, 4009)),
        (sdp("IN IP4 0.0.0.0"), True, None),  # RFC 2543 hold: keep the latch
        (sdp("IN IP4 phone.example.com"), False, None),  # host name: relay needs an IP
        (sdp("IN IP6 2001:db8::1"), False, None),  # the leg's ports are IPv4
        (sdp("IN IP4 192.0.2.7", port=0), False, None),  # refused stream: no audio
    ],
)
def test_set_remote_points_the_relay_at_usable_addresses_only(description, accepted, remote):
    call = make_call()
    relay = RecordingRelay()
    call.relay = relay  # type: ignore[assignment]
    assert call.set_remote(Leg.B, description) is accepted
    assert relay.remotes == ([remote] if remote else [])


def test_set_remote_without_a_relay_does_nothing():
    assert make_call().set_remote(Leg.A, sdp("IN IP4 192.0.2.7")) is False


def test_sdp_of_reads_only_sdp_bodies_that_parse():
    good = Response(200, headers=[("Content-Type", "application/sdp")], body=OFFER)
    parsed = sdp_of(good)
    assert parsed is not None and parsed.media[0].port == 4000
    wrong_type = Response(200, headers=[("Content-Type", "text/plain")], body=OFFER)
    broken = Response(200, headers=[("Content-Type", "application/sdp")], body=b"garbage")
    assert [sdp_of(m) for m in (wrong_type, broken, Response(200), None)] == [None] * 4


def test_fork_invite_is_a_dialog_of_our_own_carrying_the_callers_identity_and_x_headers():
    call = make_call()
    call.a_invite.headers.add("Max-Forwards", "12")
    call.a_invite.headers.set("From", '"Ann \\"A\\" Lee" <sip:1001@127.0.0.1>;tag=a')
    local = LocalEndpoint("<sip:pbx@127.0.0.1:5060>", "127.0.0.1:5060")
    peer = Peer(("127.0.0.1", 5080), "UDP", local, "127.0.0.1")
    invite = fork_invite(call, "sip:1002@10.0.0.9:5062", peer, b"v=0\r\n", "DeskPBX-test")
    wire = parse_message(bytes(invite))  # what the callee's phone parses
    assert isinstance(wire, Request) and str(wire.uri) == "sip:1002@10.0.0.9:5062"
    assert wire.from_.display == 'Ann "A" Lee' and wire.from_tag == "tag-a"
    assert getattr(wire.from_.uri, "user", None) == "1001"
    assert wire.to_tag is None and getattr(wire.to.uri, "user", None) == "1002"
    assert wire.call_id == "label-0@deskpbx" and wire.call_id != call.a_invite.call_id
    assert wire.max_forwards == 11
    assert wire.headers.get("X-Call-Type") == "sales"
    assert wire.headers.get("Contact") == "<sip:pbx@127.0.0.1:5060>"
    assert wire.headers.get("User-Agent") == "DeskPBX-test"
    assert wire.body == b"v=0\r\n" and wire.content_type == "application/sdp"


class PortsRelay(RecordingRelay):
    def local(self, leg: Leg) -> LocalPorts:
        return LocalPorts("0.0.0.0", {Leg.A: 40000, Leg.B: 40002}[leg], 0)


def test_sdp_towards_each_side_keeps_one_origin_and_bumps_its_version_on_change():
    call = make_call()
    call.relay = PortsRelay()  # type: ignore[assignment]
    forked = SessionDescription.parse(call.sdp_towards(Side.B, sdp("IN IP4 192.0.2.7"), "10.1.1.1"))
    assert forked.connection is not None and forked.connection.address == "10.1.1.1"
    assert forked.media[0].port == 40002  # the relay's leg B port, not the caller's 4000
    # The callee answers from one phone with early media, then another phone answers:
    # the caller sees one o= identity, and a new version only when the SDP changed.
    early = SessionDescription.parse(call.sdp_towards(Side.A, sdp("IN IP4 192.0.2.8"), "10.2.2.2"))
    again = SessionDescription.parse(call.sdp_towards(Side.A, sdp("IN IP4 192.0.2.9"), "10.2.2.2"))
    held = SessionDescription.parse(
        call.sdp_towards(Side.A, sdp("IN IP4 192.0.2.9", extra="a=recvonly\r\n"), "10.2.2.2")
    )
    assert early.origin.session_id == again.origin.session_id == held.origin.session_id
    assert early.origin.session_id != forked.origin.session_id
    assert early.origin.address == "10.2.2.2" and early.media[0].port == 40000
    # relayed: the phones' own addresses (192.0.2.8 / .9) never reach the other side
    assert again.origin.session_version == early.origin.session_version
    assert held.origin.session_version == early.origin.session_version + 1
    assert held.media[0].direction is not None and held.media[0].direction.value == "recvonly"


class LawRelay(PortsRelay):
    def __init__(self) -> None:
        super().__init__()
        self.transcoders: list[tuple[object, object]] = []

    def set_transcoders(self, a_to_b: object, b_to_a: object) -> None:
        self.transcoders.append((a_to_b, b_to_a))


def test_phones_on_different_laws_are_offered_both_and_bridged_by_the_relay():
    call = make_call()  # the caller offered A-law (8) alone
    relay = call.relay = LawRelay()  # type: ignore[assignment]
    offered = SessionDescription.parse(call.offer_towards(Side.B, call.a_offer, "10.1.1.1"))
    assert [f.fmt for f in offered.media[0].formats] == ["8", "0"]
    mu_law = SessionDescription.parse(
        b"v=0\r\no=- 2 2 IN IP4 192.0.2.9\r\ns=-\r\nc=IN IP4 192.0.2.9\r\nt=0 0\r\n"
        b"m=audio 5000 RTP/AVP 0\r\n"
    )
    delivered = SessionDescription.parse(
        call.answer_towards(Side.A, mu_law, call.a_offer, "10.2.2.2")
    )
    assert [f.fmt for f in delivered.media[0].formats] == ["8"]  # the caller's own law
    assert call.a_codec is not None and call.a_codec.name == "PCMA"
    a_to_b, b_to_a = relay.transcoders[-1]
    assert a_to_b(bytes([0x80, 8]) + bytes(14))[1] == 0  # A-law in, mu-law out
    assert b_to_a(bytes([0x80, 0]) + bytes(14))[1] == 8
    # a later exchange (the callee's re-INVITE, answered by the caller in mu-law, which the
    # PBX offered it) leaves both on one law: the relay stops converting
    call.answer_towards(Side.B, mu_law, offered, "10.1.1.1")
    assert relay.transcoders[-1] == (None, None)
    assert call.a_codec.name == "PCMU"
