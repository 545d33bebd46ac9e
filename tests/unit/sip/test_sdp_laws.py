"""G.711 law bridging in offers and answers (pbx.sip.sdp.with_other_law, settled_law)."""

from __future__ import annotations

import pytest

from pbx.sip.sdp import SessionDescription, settled_law, with_other_law


def sdp(formats: str, *extra: str, port: int = 4000) -> SessionDescription:
    lines = [
        "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
        f"m=audio {port} RTP/AVP {formats}", *extra,
    ]  # fmt: skip
    return SessionDescription.parse("\r\n".join(lines) + "\r\n")


def formats(description: SessionDescription) -> list[str]:
    return [f.fmt for f in description.media[0].formats]


EVENTS = "a=rtpmap:101 telephone-event/8000"


@pytest.mark.parametrize(
    ("offered", "passed_on"),
    [
        ("0 101", ["0", "101", "8"]),  # mu-law alone: A-law is offered too, last
        ("8", ["8", "0"]),  # A-law alone: mu-law too
        ("9 8 101", ["9", "8", "101", "0"]),  # G.722 first, one law
    ],
)
def test_an_offer_with_one_law_also_offers_the_other(offered, passed_on):
    out = with_other_law(sdp(offered, EVENTS))
    assert formats(out) == passed_on
    added = out.media[0].formats[-1]
    assert added.encoding is not None and added.encoding.name in ("PCMU", "PCMA")
    assert "a=rtpmap:" + added.fmt in str(out)  # named, not left to the static table


@pytest.mark.parametrize(
    "description",
    [
        sdp("0 8 101", EVENTS),  # both laws already
        sdp(
            "9",
        ),  # no G.711 at all: nothing the relay could convert to
        sdp("0", port=0),  # a refused stream
        sdp("0 8", "a=rtpmap:8 opus/48000/2"),  # 8 names something else here
    ],
)
def test_other_offers_pass_as_they_are(description):
    assert with_other_law(description) is description


def test_an_answer_in_the_added_law_reaches_the_offerer_in_its_own():
    offer = sdp("0 101", EVENTS)
    answer = sdp("8 101", EVENTS)  # the callee took the A-law the PBX added
    delivered, mine, theirs = settled_law(answer, offer)
    assert formats(delivered) == ["0", "101"]  # mu-law, events kept
    assert mine is not None and theirs is not None
    assert (mine.name, mine.payload_type, theirs.name, theirs.payload_type) == (
        "PCMU", 0, "PCMA", 8,
    )  # fmt: skip
    assert delivered.media[0].port == 4000 and delivered.connection == answer.connection


def test_an_answer_in_an_offered_codec_is_left_alone():
    offer = sdp("0 8 101", EVENTS)
    answer = sdp("8 101", EVENTS)
    delivered, mine, theirs = settled_law(answer, offer)
    assert delivered is answer and mine == theirs and mine is not None and mine.name == "PCMA"


def test_an_answer_without_voice_settles_nothing():
    offer = sdp("0")
    assert settled_law(sdp("0", port=0), offer)[1:] == (None, None)
    assert settled_law(sdp("101", EVENTS), offer)[1:] == (None, None)


def test_an_answer_the_offer_cannot_be_mapped_to_is_left_alone():
    # A-law answered to an offer of G.722 alone: not an answer to our offer, not rewritten
    answer = sdp("8")
    delivered, mine, theirs = settled_law(answer, sdp("9"))
    assert delivered is answer and mine is theirs
