"""The user agent's SDP offer/answer (pbx.ua.session): real offers, hold directions, DTMF."""

from __future__ import annotations

import pytest

from pbx.sip.sdp import Direction, NoCommonCodec, SessionDescription
from pbx.ua.session import MediaSession

BARESIP_OFFER = (
    b"v=0\r\n"
    b"o=- 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 10000 RTP/AVP 9 8 0 101\r\n"
    b"a=rtpmap:9 G722/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

YEALINK_HOLD = (
    b"v=0\r\n"
    b"o=- 20002 20003 IN IP4 192.0.2.20\r\n"
    b"s=SDP data\r\n"
    b"c=IN IP4 192.0.2.20\r\n"
    b"t=0 0\r\n"
    b"m=audio 11780 RTP/AVP 0 8 96\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:96 telephone-event/8000\r\n"
    b"a=fmtp:96 0-15\r\n"
    b"a=sendonly\r\n"
)

RFC2543_HOLD = (
    b"v=0\r\no=- 1 2 IN IP4 192.0.2.30\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)


def _media(body: bytes):
    sd = SessionDescription.parse(body)
    return sd, sd.media[0]


def test_answer_to_baresip_keeps_its_g711_order_and_telephone_event():
    session = MediaSession("127.0.0.1", 30000, session_id=7)
    sd, media = _media(session.answer(BARESIP_OFFER))
    assert [c.name for c in media.codecs()] == ["PCMA", "PCMU", "telephone-event"]
    assert (media.port, sd.connection.address, sd.origin.session_id) == (30000, "127.0.0.1", "7")
    n = session.negotiated
    assert (n.remote_host, n.remote_port) == ("192.0.2.10", 10000)
    assert (n.codec.name, n.codec.payload_type, n.dtmf_payload_type) == ("PCMA", 8, 101)
    assert n.we_send and not n.held_by_remote


def test_our_offer_lists_pcmu_pcma_and_events_and_reads_the_answer():
    session = MediaSession("127.0.0.1", 30002, session_id=9)
    sd, media = _media(session.offer())
    assert [f.fmt for f in media.formats] == ["0", "8", "101"]
    assert media.direction is Direction.SENDRECV
    answer = BARESIP_OFFER.replace(b"9 8 0 101", b"8 101")
    n = session.answer_received(answer)
    assert (n.codec.name, n.dtmf_payload_type, n.remote_port) == ("PCMA", 101, 10000)


def test_an_answer_without_telephone_event_means_info_for_dtmf():
    session = MediaSession("127.0.0.1", 30004)
    session.offer()
    n = session.answer_received(BARESIP_OFFER.replace(b"9 8 0 101", b"0"))
    assert (n.codec.name, n.dtmf_payload_type) == ("PCMU", None)


def test_hold_offers_sendonly_and_resume_sendrecv_with_a_new_version():
    session = MediaSession("127.0.0.1", 30006, session_id=5)
    first, _ = _media(session.offer())
    session.hold = True
    held, media = _media(session.offer())
    assert media.direction is Direction.SENDONLY
    assert held.origin.session_version == first.origin.session_version + 1
    n = session.answer_received(BARESIP_OFFER.replace(b"a=sendrecv", b"a=recvonly"))
    assert n.held_locally and not n.held_by_remote and n.we_send
    session.hold = False
    resumed, media = _media(session.offer())
    assert media.direction is Direction.SENDRECV
    assert resumed.origin.session_version == held.origin.session_version + 1


def test_the_same_offer_twice_keeps_the_version():
    session = MediaSession("127.0.0.1", 30008, session_id=5)
    a, _ = _media(session.offer())
    b, _ = _media(session.offer())
    assert a.origin.session_version == b.origin.session_version


def test_a_sendonly_offer_is_answered_recvonly_and_means_the_far_end_holds_us():
    session = MediaSession("127.0.0.1", 30010)
    _, media = _media(session.answer(YEALINK_HOLD))
    assert media.direction is Direction.RECVONLY
    n = session.negotiated
    assert n.held_by_remote and not n.we_send and n.dtmf_payload_type == 96


def test_an_rfc2543_hold_address_also_means_held():
    session = MediaSession("127.0.0.1", 30012)
    session.answer(RFC2543_HOLD)
    assert session.negotiated.held_by_remote and not session.negotiated.we_send


def test_both_holding_offers_inactive():
    session = MediaSession("127.0.0.1", 30014)
    session.answer(YEALINK_HOLD)
    session.hold = True
    _, media = _media(session.offer())
    assert media.direction is Direction.INACTIVE


def test_an_offer_without_a_common_voice_codec_is_refused():
    session = MediaSession("127.0.0.1", 30016)
    with pytest.raises(NoCommonCodec):
        session.answer(BARESIP_OFFER.replace(b"9 8 0 101", b"9 101"))
    assert session.negotiated is None


def test_an_answer_naming_a_codec_we_never_offered_is_refused():
    session = MediaSession("127.0.0.1", 30018)
    session.offer()
    with pytest.raises(NoCommonCodec):
        session.answer_received(BARESIP_OFFER.replace(b"9 8 0 101", b"9"))
