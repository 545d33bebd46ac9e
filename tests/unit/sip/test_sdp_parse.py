"""SDP parsing and canonical serialization (RFC 8866) against offers real devices send."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.sdp import (
    Attribute,
    Bandwidth,
    Codec,
    Connection,
    Direction,
    Encoding,
    Format,
    Media,
    Origin,
    Rtcp,
    SessionDescription,
    Timing,
    parse,
    serialize,
)

SAMPLES = Path(__file__).parent / "sdp_samples"


def sample(name: str) -> str:
    return (SAMPLES / f"{name}.sdp").read_text()


def names(media: Media) -> list[tuple[int, str, int]]:
    return [(c.payload_type, c.name, c.clock_rate) for c in media.codecs()]


# name -> (origin user, sess-id, version, c= address, audio port, codecs, session direction)
EXPECTED = {
    "yealink_t46s": (
        "-",
        "20019",
        20019,
        "192.168.1.101",
        11796,
        [
            (0, "PCMU", 8000),
            (8, "PCMA", 8000),
            (18, "G729", 8000),
            (9, "G722", 8000),
            (101, "telephone-event", 8000),
        ],
        None,
    ),
    "polycom_vvx": (
        "-",
        "1616071939",
        1616071939,
        "192.168.1.102",
        2222,
        [
            (9, "G722", 8000),
            (102, "G7221", 16000),
            (0, "PCMU", 8000),
            (8, "PCMA", 8000),
            (18, "G729", 8000),
            (127, "telephone-event", 8000),
        ],
        Direction.SENDRECV,
    ),
    "grandstream_gxp2170": (
        "1003",
        "8000",
        8000,
        "192.168.1.103",
        5004,
        [
            (8, "PCMA", 8000),
            (0, "PCMU", 8000),
            (4, "G723", 8000),
            (18, "G729", 8000),
            (9, "G722", 8000),
            (97, "iLBC", 8000),
            (2, "G726-32", 8000),
            (123, "opus", 48000),
            (101, "telephone-event", 8000),
        ],
        None,
    ),
    "baresip_ipv6": (
        "-",
        "1234567890",
        2345678901,
        "::1",
        10602,
        [(96, "opus", 48000), (0, "PCMU", 8000), (8, "PCMA", 8000), (101, "telephone-event", 8000)],
        None,
    ),
    "asterisk_pjsip": (
        "-",
        "1573412000",
        1573412002,
        "203.0.113.10",
        12086,
        [(0, "PCMU", 8000), (8, "PCMA", 8000), (101, "telephone-event", 8000)],
        None,
    ),
    "freeswitch": (
        "FreeSWITCH",
        "1700000000",
        1700000001,
        "198.51.100.7",
        24580,
        [
            (8, "PCMA", 8000),
            (0, "PCMU", 8000),
            (102, "telephone-event", 48000),
            (101, "telephone-event", 8000),
            (13, "CN", 8000),
        ],
        None,
    ),
    "linphone": (
        "alice",
        "2418",
        3543,
        "192.168.1.50",
        7078,
        [
            (96, "opus", 48000),
            (97, "speex", 16000),
            (98, "speex", 8000),
            (0, "PCMU", 8000),
            (8, "PCMA", 8000),
            (18, "G729", 8000),
            (101, "telephone-event", 48000),
            (99, "telephone-event", 16000),
            (100, "telephone-event", 8000),
        ],
        None,
    ),
    "microsip": (
        "-",
        "3906458721",
        3906458721,
        "192.168.1.60",
        4008,
        [(8, "PCMA", 8000), (0, "PCMU", 8000), (101, "telephone-event", 8000)],
        None,
    ),
    "zoiper": (
        "Zoiper",
        "0",
        17432498,
        "192.168.1.70",
        8000,
        [(0, "PCMU", 8000), (101, "telephone-event", 8000), (8, "PCMA", 8000), (3, "GSM", 8000)],
        None,
    ),
    "rfc2543_hold": (
        "cisco",
        "25",
        26,
        "0.0.0.0",
        16384,
        [(0, "PCMU", 8000), (101, "telephone-event", 8000)],
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_device_offer_values(name: str) -> None:
    user, sid, version, address, port, codecs, direction = EXPECTED[name]
    sd = parse(sample(name))
    assert (sd.origin.username, sd.origin.session_id, sd.origin.session_version) == (
        user,
        sid,
        version,
    )
    audio = sd.media[0]
    assert sd.connection_for(audio).address == address
    assert (audio.kind, audio.port, audio.proto) == ("audio", port, "RTP/AVP")
    assert names(audio) == codecs
    assert sd.direction is direction
    assert sd.timings == (Timing(0, 0),)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_round_trip_lf_and_crlf(name: str) -> None:
    text = sample(name)
    lf = parse(text)
    crlf = parse(text.replace("\n", "\r\n"))
    assert lf == crlf
    wire = serialize(lf)
    assert "\n" not in wire.replace("\r\n", "")
    assert wire.endswith("\r\n")
    assert parse(wire) == lf
    assert serialize(parse(wire)) == wire
    assert bytes(lf) == wire.encode()
    assert SessionDescription.parse(wire.encode()) == lf


def test_canonical_text_is_reproduced_byte_for_byte() -> None:
    text = sample("asterisk_pjsip").replace("\n", "\r\n")
    assert str(parse(text)) == text


def test_fields_known_and_unknown_attributes() -> None:
    sd = parse(sample("freeswitch"))
    audio = sd.media[0]
    assert audio.ptime == 20
    assert audio.rtcp == Rtcp(24581, Connection("198.51.100.7", "IP4", "IN"))
    assert audio.formats[2] == Format("102", Encoding("telephone-event", 48000), "0-16")
    assert audio.formats[4] == Format("13", Encoding("CN", 8000))

    asterisk = parse(sample("asterisk_pjsip")).media[0]
    assert (asterisk.ptime, asterisk.maxptime, asterisk.direction) == (20, 150, Direction.SENDRECV)
    assert asterisk.codecs()[2] == Codec(101, "telephone-event", 8000, fmtp="0-16")

    micro = parse(sample("microsip"))
    assert micro.connection is None
    assert micro.media[0].connection == Connection("192.168.1.60")
    assert micro.bandwidths == (Bandwidth("AS", 84),)
    assert micro.media[0].bandwidths == (Bandwidth("AS", 64000),)
    assert micro.attributes == (Attribute("X-nat", "0"),)
    assert micro.media[0].attributes == (Attribute("ssrc", "1183728540 cname:4b3b2e0a67f15b1e"),)

    zoiper = parse(sample("zoiper")).media[0]
    assert zoiper.attributes == (Attribute("rtcp-mux"),)
    assert zoiper.formats[0] == Format("0")  # static payload: no rtpmap, still PCMU
    assert zoiper.codecs()[0] == Codec(0, "PCMU", 8000)


def test_linphone_fmtp_without_rtpmap_and_session_attributes() -> None:
    sd = parse(sample("linphone"))
    audio, video = sd.media
    assert audio.formats[5] == Format("18", None, "annexb=yes")
    assert audio.codecs()[5] == Codec(18, "G729", 8000, fmtp="annexb=yes")
    assert audio.rtcp == Rtcp(7079)
    assert audio.codecs()[0] == Codec(96, "opus", 48000, 2, "useinbandfec=1")
    assert [a.name for a in sd.attributes] == ["rtcp-xr", "record"]
    assert (
        sd.attributes[0].value == "rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics"
    )
    assert (video.kind, video.port) == ("video", 9078)
    assert [c.name for c in video.codecs()] == ["VP8", "H264"]
    assert video.attributes == (Attribute("rtcp-fb", "* nack pli"),)


def test_grandstream_fmtp_with_spaces_and_media_connection() -> None:
    audio = parse(sample("grandstream_gxp2170")).media[0]
    assert audio.connection == Connection("192.168.1.103")
    opus = next(c for c in audio.codecs() if c.name == "opus")
    assert opus.channels == 2
    assert opus.fmtp == (
        "maxplaybackrate=16000; sprop-maxcapturerate=16000; maxaveragebitrate=20000; useinbandfec=1"
    )


def test_disabled_and_non_rtp_media_kept() -> None:
    text = (
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\nm=image 0 udptl t38\r\n"
        "m=audio 4002/2 RTP/SAVP 8\r\n"
    )
    sd = parse(text)
    assert [(m.kind, m.port, m.proto) for m in sd.media] == [
        ("audio", 4000, "RTP/AVP"),
        ("video", 0, "RTP/AVP"),
        ("image", 0, "udptl"),
        ("audio", 4002, "RTP/SAVP"),
    ]
    assert sd.media[2].formats == (Format("t38"),)
    assert sd.media[2].codecs() == ()
    assert sd.media[3].port_count == 2
    assert str(sd) == text


def test_rtpmap_for_unlisted_format_is_kept_verbatim() -> None:
    text = (
        "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n"
        "a=rtpmap:96 opus/48000/2\na=fmtp:96 useinbandfec=1\n"
    )
    audio = parse(text).media[0]
    assert audio.attributes == (
        Attribute("rtpmap", "96 opus/48000/2"),
        Attribute("fmtp", "96 useinbandfec=1"),
    )
    assert parse(str(parse(text))) == parse(text)


def test_all_optional_session_lines_in_canonical_order() -> None:
    text = (
        "v=0\r\no=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\ns=SDP Seminar\r\n"
        "i=A Seminar on the session description protocol\r\n"
        "u=http://www.example.com/seminars/sdp.pdf\r\ne=j.doe@example.com (Jane Doe)\r\n"
        "p=+1 617 555-6011\r\nc=IN IP4 224.2.17.12/127\r\nb=CT:128\r\n"
        "t=2873397496 2873404696\r\nr=7d 1h 0 25h\r\nz=2882844526 -1h 2898848070 0\r\n"
        "k=prompt\r\na=recvonly\r\nm=audio 49170 RTP/AVP 0\r\ni=voice\r\nc=IN IP4 10.0.0.9\r\n"
        "b=AS:80\r\nk=clear:abc\r\na=inactive\r\n"
    )
    sd = parse(text)
    assert sd.info == "A Seminar on the session description protocol"
    assert sd.emails == ("j.doe@example.com (Jane Doe)",)
    assert sd.phones == ("+1 617 555-6011",)
    assert sd.connection == Connection("224.2.17.12/127")
    assert sd.timings == (Timing(2873397496, 2873404696, ("7d 1h 0 25h",)),)
    assert sd.zone == "2882844526 -1h 2898848070 0"
    assert sd.direction is Direction.RECVONLY
    m = sd.media[0]
    assert (m.title, m.key, m.direction) == ("voice", "clear:abc", Direction.INACTIVE)
    assert str(sd) == text


def test_built_session_serializes_in_rfc_order() -> None:
    sd = SessionDescription(
        Origin("-", "7", 8, "192.0.2.1"),
        connection=Connection("192.0.2.1"),
        media=(
            Media(
                "audio",
                5000,
                "RTP/AVP",
                (Codec(8, "PCMA", 8000).as_format(),),
                ptime=20,
                rtcp=Rtcp(5001),
                direction=Direction.SENDONLY,
                attributes=(Attribute("rtcp-mux"),),
            ),
        ),
    )
    assert str(sd) == (
        "v=0\r\no=- 7 8 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\na=rtcp:5001\r\n"
        "a=rtcp-mux\r\na=sendonly\r\n"
    )


BAD = {
    "empty": "",
    "no version": "o=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n",
    "version 1": "v=1\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n",
    "no origin": "v=0\ns=-\nt=0 0\n",
    "no name": "v=0\no=- 1 1 IN IP4 1.2.3.4\nt=0 0\n",
    "short origin": "v=0\no=- 1 IN IP4 1.2.3.4\ns=-\nt=0 0\n",
    "origin version text": "v=0\no=- 1 x IN IP4 1.2.3.4\ns=-\nt=0 0\n",
    "two origins": "v=0\no=- 1 1 IN IP4 1.2.3.4\no=- 1 1 IN IP4 1.2.3.4\ns=-\n",
    "no equals": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nhello\n",
    "unknown type": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nx=1\n",
    "space before =": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt =0 0\n",
    "bad port": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm=audio 70000 RTP/AVP 0\n",
    "port sign": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm=audio -1 RTP/AVP 0\n",
    "no format": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm=audio 4000 RTP/AVP\n",
    "dup format": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm=audio 4000 RTP/AVP 0 0\n",
    "bad c": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4\n",
    "two c": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.1.1.1\nc=IN IP4 1.1.1.1\n",
    "two directions": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\na=sendonly\na=recvonly\n",
    "origin in media": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm=audio 4 RTP/AVP 0\no=x\n",
    "r without t": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nr=1d 1h 0\n",
    "bad b": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nb=AS\n",
    "nul": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=a\x00b\n",
    "stray cr": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=a\rb\n",
    "empty attribute": "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\na=\n",
    "blank line": "v=0\n\no=- 1 1 IN IP4 1.2.3.4\ns=-\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_raises_parse_error(name: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(BAD[name])
    assert info.value.status == 400
    assert info.value.reason.startswith("SDP: ")


def test_non_utf8_bytes_raise_parse_error() -> None:
    with pytest.raises(ParseError, match="not UTF-8"):
        parse(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=\xff\r\n")


def test_missing_t_line_is_tolerated() -> None:
    sd = parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nm=audio 4000 RTP/AVP 0\n")
    assert sd.timings == ()
    assert "t=" not in str(sd)


def test_trailing_blank_after_property_attribute_is_forgiven() -> None:
    sd = parse(
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns= \r\nt=0 0\r\nm=audio 4 RTP/AVP 0\r\na=sendonly \r\n"
    )
    assert sd.name == " "
    assert sd.media[0].direction is Direction.SENDONLY


# A malformed or repeated value of an attribute we interpret is kept verbatim, not fatal.
LENIENT = {
    "a=rtpmap:96 opus": Attribute("rtpmap", "96 opus"),
    "a=rtpmap:96 op/x": Attribute("rtpmap", "96 op/x"),
    "a=rtpmap:96 opus/48000/2/1": Attribute("rtpmap", "96 opus/48000/2/1"),
    "a=fmtp:96": Attribute("fmtp", "96"),
    "a=ptime:20.5": Attribute("ptime", "20.5"),
    "a=maxptime:": Attribute("maxptime", ""),
    "a=rtcp:5 IN": Attribute("rtcp", "5 IN"),
    "a=rtcp:99999": Attribute("rtcp", "99999"),
    "a=rtpmap:96 opus/48000/2\r\na=rtpmap:96 opus/48000": Attribute("rtpmap", "96 opus/48000"),
    "a=ptime:20\r\na=ptime:30": Attribute("ptime", "30"),
}


@pytest.mark.parametrize("line", sorted(LENIENT))
def test_malformed_known_attribute_is_kept_verbatim(line: str) -> None:
    head = "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4 RTP/AVP 96\r\n"
    sd = parse(f"{head}{line}\r\n")
    assert sd.media[0].attributes == (LENIENT[line],)
    assert parse(str(sd)) == sd


def test_first_of_repeated_attributes_wins() -> None:
    sd = parse(
        "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4 RTP/AVP 96\r\n"
        "a=rtpmap:96 opus/48000/2\r\na=rtpmap:96 opus/48000\r\na=ptime:20\r\na=ptime:30\r\n"
    )
    assert sd.media[0].codecs() == (Codec(96, "opus", 48000, 2),)
    assert sd.media[0].ptime == 20


# RFC 4475 messages whose SDP body is the classic one with "a=rtpmap:31 LPC" on video.
RFC4475_SDP = ["wsinv", "esc01", "lwsstart", "longreq", "sdp01", "unreason", "ltgtruri"]


@pytest.mark.parametrize("name", RFC4475_SDP)
def test_rfc4475_bodies_parse_and_answer(name: str) -> None:
    from pbx.sip.sdp import make_answer
    from tests.conftest import rfc4475_message

    body = rfc4475_message(name).split(b"\r\n\r\n", 1)[1]
    sd = parse(body)
    assert (sd.origin.username, sd.origin.session_id, sd.origin.session_version) == (
        "mhandley",
        "29739",
        7272939,
    )
    audio, video = sd.media
    assert (audio.port, [f.fmt for f in audio.formats]) == (49217, ["0", "12"])
    assert (video.port, video.formats) == (3227, (Format("31"),))
    assert video.attributes == (Attribute("rtpmap", "31 LPC"),)
    assert parse(str(sd)) == sd
    answer = make_answer(sd, "192.0.2.10", 40000)
    assert [(m.kind, m.port, [c.name for c in m.codecs()]) for m in answer.media] == [
        ("audio", 40000, ["PCMU"]),
        ("video", 0, []),
    ]


def test_rfc4475_body_without_s_and_t_is_rejected() -> None:
    from tests.conftest import rfc4475_message

    body = rfc4475_message("mismatch02").split(b"\r\n\r\n", 1)[1]
    with pytest.raises(ParseError, match="o= and s= lines are required"):
        parse(body)


def _audio(lines: str) -> Media:
    text = f"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n{lines}"
    return SessionDescription.parse(text).media[0]


@pytest.mark.parametrize(
    "rtpmap",
    ["96 opus/48000/2", "96  opus/48000/2", "96\topus/48000/2", " 96 opus/48000/2 "],
)
def test_rtpmap_spellings_read_alike(rtpmap: str) -> None:
    media = _audio(f"m=audio 4000 RTP/AVP 96 0\r\na=rtpmap:{rtpmap}\r\na=rtpmap:0 PCMU/8000\r\n")
    assert [f.encoding for f in media.formats] == [
        Encoding("opus", 48000, 2), Encoding("PCMU", 8000),
    ]  # fmt: skip
    assert media.attributes == ()


@pytest.mark.parametrize(
    ("rtpmap", "kept"),
    [
        ("97 opus/48000", "97 opus/48000"),  # a format the m= line does not list
        ("0 PCMU/8000", "0 PCMU/8000"),  # a second rtpmap for one format
        ("96 opus/x", "96 opus/x"),  # a clock rate that is no number
        ("96 op@us/48000", "96 op@us/48000"),  # an encoding name that is no token
    ],
)
def test_unusable_rtpmaps_stay_verbatim_attributes(rtpmap: str, kept: str) -> None:
    media = _audio(f"m=audio 4000 RTP/AVP 96 0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:{rtpmap}\r\n")
    assert Attribute("rtpmap", kept) in media.attributes
    assert media.formats[1].encoding == Encoding("PCMU", 8000)


def test_a_bad_m_line_format_is_named_in_the_error() -> None:
    with pytest.raises(ParseError, match=r"bad m= format: 'x@y'"):
        _audio("m=audio 4000 RTP/AVP 0 x@y 8\r\n")


def test_directions_with_and_without_a_trailing_blank() -> None:
    assert _audio("m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n").direction is Direction.RECVONLY
    assert _audio("m=audio 4000 RTP/AVP 0\r\na=inactive \r\n").direction is Direction.INACTIVE
    with pytest.raises(ParseError, match="duplicate direction"):
        _audio("m=audio 4000 RTP/AVP 0\r\na=sendonly\r\na=recvonly\r\n")
