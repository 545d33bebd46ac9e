"""rewrite_for_relay changes only the address, ports, origin and ICE attributes: every other
session field of the description survives (RFC 8866 5; the B2BUA relays the rest as is)."""

from __future__ import annotations

import dataclasses

from pbx.sip.sdp import Attribute, Bandwidth, Direction, SessionDescription, rewrite_for_relay

BODY = (
    "v=0\r\no=alice 7 9 IN IP4 192.0.2.10\r\ns=Talk\r\ni=A chat\r\nu=http://example.com/x\r\n"
    "e=alice@example.com\r\np=+1 555 0100\r\nc=IN IP4 192.0.2.10\r\nb=AS:64\r\nt=0 0\r\n"
    "r=7d 1h 0 25h\r\nz=2882844526 -1h\r\nk=prompt\r\na=tool:phone\r\na=ice-ufrag:abcd\r\n"
    "a=sendonly\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def test_every_session_field_but_the_relayed_ones_survives() -> None:
    sd = SessionDescription.parse(BODY)
    out = rewrite_for_relay(sd, "198.51.100.1", 30000)
    assert out.media[0].port == 30000
    assert out.connection is not None and out.connection.address == "198.51.100.1"
    assert out.origin.address == "198.51.100.1" and out.origin.session_version == 9
    assert out.attributes == (Attribute("tool", "phone"),)  # ICE gone (the relay's address)
    kept = {f.name for f in dataclasses.fields(SessionDescription)} - {
        "origin",
        "connection",
        "media",
        "attributes",
    }
    assert {name: getattr(out, name) for name in kept} == {name: getattr(sd, name) for name in kept}
    assert (out.info, out.uri, out.zone, out.key) == (
        "A chat",
        "http://example.com/x",
        "2882844526 -1h",
        "prompt",
    )
    assert out.bandwidths == (Bandwidth("AS", 64),) and out.direction is Direction.SENDONLY
    assert out.emails == ("alice@example.com",) and out.timings[0].repeats == ("7d 1h 0 25h",)
