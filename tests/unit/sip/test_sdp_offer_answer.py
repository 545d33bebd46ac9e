"""RFC 3264 offer/answer for audio: answers to real device offers, direction, hold/resume,
o= versioning, no-common-codec (488) and the relay rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.sip.errors import SipError
from pbx.sip.sdp import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Attribute,
    AudioPolicy,
    Codec,
    Connection,
    Direction,
    Format,
    LocalSession,
    NoCommonCodec,
    Preference,
    Rtcp,
    SessionDescription,
    addrtype_of,
    format_events,
    make_answer,
    make_offer,
    negotiate,
    parse,
    parse_events,
    rewrite_for_relay,
    with_direction,
)

SAMPLES = Path(__file__).parent / "sdp_samples"
PBX = "192.0.2.10"


def sample(name: str) -> SessionDescription:
    return parse((SAMPLES / f"{name}.sdp").read_text())


def offer_text(media: str, session_extra: str = "", address: str = "10.0.0.7") -> str:
    return (
        f"v=0\r\no=- 42 42 IN IP4 {address}\r\ns=-\r\nc=IN IP4 {address}\r\nt=0 0\r\n"
        f"{session_extra}{media}"
    )


def pts(sd: SessionDescription, index: int = 0) -> list[int]:
    return [c.payload_type for c in sd.media[index].codecs()]


# sample -> (answer payload types in order, telephone-event fmtp, media count)
ANSWERS = {
    "yealink_t46s": ([0, 8, 101], "0-15", 1),
    "polycom_vvx": ([0, 8, 127], "0-15", 1),
    "grandstream_gxp2170": ([8, 0, 101], "0-15", 1),
    "baresip_ipv6": ([0, 8, 101], "0-15", 1),
    "asterisk_pjsip": ([0, 8, 101], "0-16", 1),
    "freeswitch": ([8, 0, 101], "0-16", 1),
    "linphone": ([0, 8, 100], "0-15", 2),
    "microsip": ([8, 0, 101], "0-16", 1),
    "zoiper": ([0, 8, 101], "0-16", 1),
    "rfc2543_hold": ([0, 101], "0-15", 1),
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answer_to_device_offer(name: str) -> None:
    expected_pts, events, count = ANSWERS[name]
    offer = sample(name)
    answer = make_answer(offer, PBX, 40000)
    assert len(answer.media) == count
    audio = answer.media[0]
    assert (audio.kind, audio.port, audio.proto, audio.ptime) == ("audio", 40000, "RTP/AVP", 20)
    assert pts(answer) == expected_pts
    assert audio.codecs()[-1].name == "telephone-event"
    assert audio.codecs()[-1].clock_rate == 8000
    assert audio.codecs()[-1].fmtp == events
    assert answer.connection == Connection(PBX, "IP4")
    assert answer.timings == offer.timings
    assert parse(str(answer)) == answer


def test_answer_keeps_offered_video_line_with_port_zero() -> None:
    answer = make_answer(sample("linphone"), PBX, 40000)
    video = answer.media[1]
    assert (video.kind, video.port, video.proto) == ("video", 0, "RTP/AVP")
    assert video.formats == (Format("96"), Format("97"))
    assert "m=video 0 RTP/AVP 96 97\r\n" in str(answer)


def test_our_preference_order() -> None:
    policy = AudioPolicy(codecs=(PCMA, PCMU, TELEPHONE_EVENT), preference=Preference.OURS)
    assert pts(make_answer(sample("yealink_t46s"), PBX, 4000, policy)) == [8, 0, 101]
    offerer = AudioPolicy(codecs=(PCMA, PCMU, TELEPHONE_EVENT))
    assert pts(make_answer(sample("yealink_t46s"), PBX, 4000, offerer)) == [0, 8, 101]


def test_dynamic_telephone_event_matched_by_name_and_rate() -> None:
    offer = parse(
        offer_text(
            "m=audio 5000 RTP/AVP 8 96 97\r\na=rtpmap:96 telephone-event/48000\r\n"
            "a=rtpmap:97 TELEPHONE-EVENT/8000\r\na=fmtp:97 0-11\r\n"
        )
    )
    audio = make_answer(offer, PBX, 4000).media[0]
    assert audio.codecs() == (
        Codec(8, "PCMA", 8000),
        Codec(97, "TELEPHONE-EVENT", 8000, fmtp="0-11"),
    )


def test_static_payload_number_with_rtpmap_of_other_codec() -> None:
    # rtpmap wins over the static table: a pt 0 that says PCMA is PCMA.
    offer = parse(offer_text("m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMA/8000\r\n"))
    assert make_answer(offer, PBX, 4000).media[0].codecs() == (Codec(0, "PCMA", 8000),)


def test_ptime_echoed_when_policy_has_none() -> None:
    offer = parse(offer_text("m=audio 5000 RTP/AVP 0\r\na=ptime:30\r\n"))
    assert make_answer(offer, PBX, 4000, AudioPolicy(ptime=None)).media[0].ptime == 30
    assert make_answer(offer, PBX, 4000).media[0].ptime == 20


DIRECTIONS = [
    # offer direction, our policy direction, answer direction (RFC 3264 section 6.1)
    ("sendrecv", Direction.SENDRECV, Direction.SENDRECV),
    ("sendonly", Direction.SENDRECV, Direction.RECVONLY),
    ("recvonly", Direction.SENDRECV, Direction.SENDONLY),
    ("inactive", Direction.SENDRECV, Direction.INACTIVE),
    ("sendrecv", Direction.SENDONLY, Direction.SENDONLY),
    ("sendonly", Direction.SENDONLY, Direction.INACTIVE),
    ("recvonly", Direction.RECVONLY, Direction.INACTIVE),
    ("sendrecv", Direction.INACTIVE, Direction.INACTIVE),
]


@pytest.mark.parametrize(("offered", "ours", "expected"), DIRECTIONS)
def test_answer_direction(offered: str, ours: Direction, expected: Direction) -> None:
    offer = parse(offer_text(f"m=audio 5000 RTP/AVP 0\r\na={offered}\r\n"))
    answer = make_answer(offer, PBX, 4000, AudioPolicy(direction=ours))
    assert answer.media[0].direction is expected


def test_session_level_direction_applies_to_media() -> None:
    offer = parse(offer_text("m=audio 5000 RTP/AVP 0\r\n", session_extra="a=sendonly\r\n"))
    assert offer.direction_for(offer.media[0]) is Direction.SENDONLY
    assert make_answer(offer, PBX, 4000).media[0].direction is Direction.RECVONLY


def test_rfc2543_hold_recognised() -> None:
    offer = sample("rfc2543_hold")
    assert offer.is_hold()
    assert offer.direction_for(offer.media[0]) is Direction.SENDONLY
    assert make_answer(offer, PBX, 4000).media[0].direction is Direction.RECVONLY
    inactive = parse(offer_text("m=audio 5000 RTP/AVP 0\r\na=inactive\r\n", address="0.0.0.0"))
    assert make_answer(inactive, PBX, 4000).media[0].direction is Direction.INACTIVE
    assert not sample("yealink_t46s").is_hold()


def test_hold_and_resume_bump_version_only_on_change() -> None:
    local = LocalSession(PBX, session_id=1000)
    first = local.offer(4000)
    assert (first.origin.session_id, first.origin.session_version) == ("1000", 1000)
    assert first.origin.address == PBX
    assert local.describe(first).origin.session_version == 1000  # re-INVITE, no change
    held = local.describe(with_direction(first, Direction.SENDONLY))
    assert held.origin.session_version == 1001
    assert held.media[0].direction is Direction.SENDONLY
    assert "a=sendonly\r\n" in str(held)
    remote = make_answer(parse(str(held)), "10.0.0.7", 6000)
    assert remote.media[0].direction is Direction.RECVONLY
    resumed = local.describe(with_direction(held, Direction.SENDRECV))
    assert resumed.origin.session_version == 1002
    assert resumed.media[0].direction is Direction.SENDRECV
    assert local.describe(resumed).origin.session_version == 1002
    assert parse(str(resumed)) == resumed


def test_local_session_answer_and_explicit_version() -> None:
    local = LocalSession("2001:db8::5", session_id=77, version=3, username="deskpbx")
    offer = sample("asterisk_pjsip")
    a1 = local.answer(offer, 4000)
    a2 = local.answer(offer, 4000)
    a3 = local.answer(offer, 4002)
    assert [a.origin.session_version for a in (a1, a2, a3)] == [3, 3, 4]
    assert str(a1).startswith(
        "v=0\r\no=deskpbx 77 3 IN IP6 2001:db8::5\r\ns=-\r\nc=IN IP6 2001:db8::5\r\n"
    )


def test_make_offer_from_policy() -> None:
    offer = make_offer("::1", 7000)
    assert str(offer).split("\r\n")[2:] == [
        "s=-",
        "c=IN IP6 ::1",
        "t=0 0",
        "m=audio 7000 RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
        "",
    ]


NO_COMMON = {
    "g729 only": "m=audio 5000 RTP/AVP 18\r\n",
    "telephone-event alone": "m=audio 5000 RTP/AVP 18 101\r\na=rtpmap:101 telephone-event/8000\r\n",
    "srtp profile": "m=audio 5000 RTP/SAVP 0 8\r\n",
    "video only": "m=video 5002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n",
    "audio disabled": "m=audio 0 RTP/AVP 0\r\n",
    "unknown dynamic": "m=audio 5000 RTP/AVP 96\r\n",
}


@pytest.mark.parametrize("name", sorted(NO_COMMON))
def test_no_common_codec_is_488(name: str) -> None:
    offer = parse(offer_text(NO_COMMON[name]))
    with pytest.raises(NoCommonCodec) as info:
        make_answer(offer, PBX, 4000)
    assert isinstance(info.value, SipError)
    assert (info.value.status, info.value.reason) == (488, "Not Acceptable Here")


def test_no_common_codec_lists_offered_codecs() -> None:
    offer = parse(offer_text(NO_COMMON["telephone-event alone"]))
    with pytest.raises(NoCommonCodec) as info:
        make_answer(offer, PBX, 4000)
    assert [c.name for c in info.value.offered] == ["G729", "telephone-event"]
    assert "G729/8000" in str(info.value)
    with pytest.raises(NoCommonCodec):
        negotiate([Codec(101, "telephone-event", 8000)], AudioPolicy())


def test_second_audio_stream_and_rejected_first_stream() -> None:
    offer = parse(
        offer_text(
            "m=audio 5000 RTP/AVP 18\r\nm=audio 5002 RTP/AVP 8\r\nm=audio 5004 RTP/AVP 0\r\n"
        )
    )
    answer = make_answer(offer, PBX, 4000)
    assert [(m.port, [f.fmt for f in m.formats]) for m in answer.media] == [
        (0, ["18"]),
        (4000, ["8"]),
        (0, ["0"]),
    ]


def test_events_helpers() -> None:
    assert parse_events(None) == frozenset(range(16))
    assert parse_events("0-15,66,70-71") == frozenset([*range(16), 66, 70, 71])
    assert parse_events("0-x") is None
    assert format_events(frozenset([*range(12), 16])) == "0-11,16"
    assert addrtype_of("fe80::1") == "IP6"
    assert addrtype_of("pbx.example.com") == "IP4"


def test_relay_rewrite_media_connection_and_rtcp() -> None:
    offer = sample("microsip")
    relayed = rewrite_for_relay(offer, "10.9.9.9", 30000, rtcp_ports={0: 30001})
    audio = relayed.media[0]
    assert relayed.connection == Connection("10.9.9.9", "IP4")
    assert (relayed.origin.address, relayed.origin.session_version) == ("10.9.9.9", 3906458721)
    assert (audio.port, audio.connection) == (30000, None)
    assert audio.rtcp == Rtcp(30001, Connection("10.9.9.9", "IP4"))
    assert audio.formats == offer.media[0].formats
    assert audio.attributes == offer.media[0].attributes
    assert "192.168.1.60" not in str(relayed)
    assert offer.media[0].port == 4008  # the original is untouched
    dropped = rewrite_for_relay(offer, "10.9.9.9", 30000)
    assert dropped.media[0].rtcp is None
    assert "a=rtcp" not in str(dropped)


def test_relay_rewrite_stamps_a_local_sessions_origin_that_describe_keeps() -> None:
    offer = sample("microsip")
    session = LocalSession("10.9.9.9", 77)
    relayed = rewrite_for_relay(offer, "10.9.9.9", 30000, origin=session.origin)
    assert relayed.origin is session.origin
    first = session.describe(relayed)
    assert first == relayed and first.origin.session_version == 77
    again = session.describe(rewrite_for_relay(offer, "10.9.9.9", 30000, origin=session.origin))
    assert again.origin.session_version == 77  # nothing changed: no new version
    moved = rewrite_for_relay(offer, "10.9.9.9", 30002, origin=session.origin)
    bumped = session.describe(moved)
    assert bumped.origin.session_version == 78 and bumped.media[0].port == 30002
    unstamped = rewrite_for_relay(offer, "10.9.9.9", 30002)  # describe() stamps it instead
    assert session.describe(unstamped).origin.session_version == 78


def test_relay_rewrite_ipv6_and_ice_attributes() -> None:
    offer = parse(
        offer_text(
            "m=audio 5000 RTP/AVP 0\r\na=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecret\r\n"
            "a=candidate:1 1 UDP 2130706431 10.0.0.7 5000 typ host\r\na=rtcp-mux\r\n",
            session_extra="a=ice-lite\r\n",
        )
    )
    relayed = rewrite_for_relay(offer, "2001:db8::1", 30000)
    assert relayed.connection == Connection("2001:db8::1", "IP6")
    assert relayed.origin.addrtype == "IP6"
    assert relayed.attributes == ()
    assert relayed.media[0].attributes == (Attribute("rtcp-mux"),)
    assert parse(str(relayed)) == relayed


def test_relay_rewrite_streams_without_relay_port_are_disabled() -> None:
    offer = sample("linphone")
    audio_only = rewrite_for_relay(offer, "10.9.9.9", 30000)
    assert [(m.kind, m.port) for m in audio_only.media] == [("audio", 30000), ("video", 0)]
    both = rewrite_for_relay(offer, "10.9.9.9", {0: 30000, 1: 30002})
    assert [(m.kind, m.port) for m in both.media] == [("audio", 30000), ("video", 30002)]
    assert both.media[0].rtcp is None  # a=rtcp:7079 pointed at the phone, not the relay
    disabled = parse(offer_text("m=audio 5000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n"))
    out = rewrite_for_relay(disabled, "10.9.9.9", {0: 30000, 1: 30002})
    assert [m.port for m in out.media] == [30000, 0]


def test_relay_rewrite_keeps_rfc2543_hold_as_direction() -> None:
    offer = sample("rfc2543_hold")
    relayed = rewrite_for_relay(offer, "10.9.9.9", 30000)
    assert relayed.connection == Connection("10.9.9.9")
    assert relayed.media[0].direction is Direction.SENDONLY
    assert relayed.is_hold()
    assert make_answer(relayed, PBX, 4000).media[0].direction is Direction.RECVONLY
    normal = rewrite_for_relay(sample("zoiper"), "10.9.9.9", 30000)
    assert normal.media[0].direction is Direction.SENDRECV
    assert rewrite_for_relay(sample("asterisk_pjsip"), "10.9.9.9", 1).media[0].direction is (
        Direction.SENDRECV
    )
    assert rewrite_for_relay(sample("polycom_vvx"), "10.9.9.9", 1).media[0].direction is None


def test_b2bua_flow_through_relay_with_hold_and_resume() -> None:
    """Caller offer -> relay rewrite stamped by the B leg's LocalSession -> callee answer ->
    relay rewrite stamped by the A leg's session: each side only ever sees the relay."""
    leg_a, leg_b = LocalSession(PBX, 500), LocalSession(PBX, 900)
    caller = LocalSession("192.168.1.101", 20019)
    offer_a = caller.describe(parse(str(sample("yealink_t46s"))))
    offer_b = leg_b.describe(rewrite_for_relay(offer_a, PBX, 31000))
    assert (offer_b.origin.session_id, offer_b.origin.session_version) == ("900", 900)
    answer_b = make_answer(parse(str(offer_b)), "192.168.1.60", 4008)
    answer_a = leg_a.describe(rewrite_for_relay(answer_b, PBX, 30000))
    assert answer_a.media[0].port == 30000
    assert answer_a.connection == Connection(PBX)
    assert [c.name for c in answer_a.media[0].codecs()] == ["PCMU", "PCMA", "telephone-event"]
    # The caller holds: sendonly re-INVITE; the callee is asked to only receive.
    hold_a = caller.describe(with_direction(offer_a, Direction.SENDONLY))
    hold_b = leg_b.describe(rewrite_for_relay(hold_a, PBX, 31000))
    assert hold_b.origin.session_version == 901
    assert make_answer(hold_b, "192.168.1.60", 4008).media[0].direction is Direction.RECVONLY
    # Same hold offer again (session refresh): no version change on the B leg.
    assert leg_b.describe(rewrite_for_relay(hold_a, PBX, 31000)).origin.session_version == 901
    resume_b = leg_b.describe(
        rewrite_for_relay(with_direction(hold_a, Direction.SENDRECV), PBX, 31000)
    )
    assert resume_b.origin.session_version == 902
    assert make_answer(resume_b, "192.168.1.60", 4008).media[0].direction is Direction.SENDRECV


def test_ipv6_offer_answer_and_unspecified_address_hold() -> None:
    offer = sample("baresip_ipv6")
    answer = LocalSession("2001:db8::10", 4242).answer(offer, 40000)
    assert answer.connection == Connection("2001:db8::10", "IP6")
    assert (answer.origin.addrtype, answer.origin.address) == ("IP6", "2001:db8::10")
    assert "c=IN IP6 2001:db8::10\r\n" in str(answer)
    held = parse(
        "v=0\r\no=- 1 2 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"
    )
    assert held.is_hold()
    assert make_answer(held, "::1", 4000).media[0].direction is Direction.RECVONLY


def test_restrict_offer_keeps_only_codecs_we_relay() -> None:
    from pbx.sip.sdp import restrict_offer

    offer = sample("polycom_vvx")
    forwarded = restrict_offer(offer)
    assert [f.fmt for f in forwarded.media[0].formats] == ["0", "8", "127"]
    assert forwarded.media[0].formats[2] == offer.media[0].formats[5]  # rtpmap kept as sent
    assert forwarded.direction is Direction.SENDRECV
    linphone = restrict_offer(sample("linphone"))
    assert [f.fmt for f in linphone.media[0].formats] == ["0", "8", "100"]
    assert linphone.media[1] == sample("linphone").media[1]  # video untouched here
    with pytest.raises(NoCommonCodec):
        restrict_offer(parse(offer_text(NO_COMMON["g729 only"])))
    two = restrict_offer(parse(offer_text("m=audio 5000 RTP/AVP 18\r\nm=audio 5002 RTP/AVP 8\r\n")))
    assert [(m.port, [f.fmt for f in m.formats]) for m in two.media] == [
        (0, ["18"]),
        (5002, ["8"]),
    ]
