"""SDP line splitting: CRLF, bare LF, mixed, and the characters no line may hold (RFC 8866 5)."""

from __future__ import annotations

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.sdp import parse

HEAD = [
    "v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0",
    "m=audio 4000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=sendrecv",
]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        "\r\n".join(HEAD) + "\r\n",
        "\n".join(HEAD) + "\n",
        "\r\n".join(HEAD[:4]) + "\n" + "\n".join(HEAD[4:]) + "\r\n",  # mixed line ends
        "\r\n".join(HEAD),  # no final line end
        "\r\n".join(HEAD) + "\r",  # a final CR without LF
        "\r\n".join(HEAD) + "\r\n\r\n",  # trailing empty lines
    ],
    ids=["crlf", "lf", "mixed", "unterminated", "final-cr", "trailing-empty"],
)
def test_every_line_ending_gives_the_same_description(body: str) -> None:
    sd = parse(body)
    assert sd == parse("\r\n".join(HEAD) + "\r\n")
    [media] = sd.media
    assert (media.port, [f.fmt for f in media.formats]) == (4000, ["0", "101"])
    assert media.formats[1].encoding is not None
    assert media.formats[1].encoding.name == "telephone-event"
    assert media.direction is not None and media.direction.value == "sendrecv"


@pytest.mark.parametrize(
    "bad_line",
    ["s=a\rb", "s=a\x00b", "s=ab\r\r"],
    ids=["cr-inside-crlf-body", "nul-inside-crlf-body", "two-crs-before-lf"],
)
def test_a_bare_cr_or_nul_in_a_crlf_body_is_refused(bad_line: str) -> None:
    lines = [*HEAD[:2], bad_line, *HEAD[3:]]
    with pytest.raises(ParseError, match="malformed line"):
        parse("\r\n".join(lines) + "\r\n")


def test_an_attribute_name_with_a_trailing_blank_is_forgiven_but_not_a_bad_token() -> None:
    sd = parse("\r\n".join([*HEAD[:-1], "a=sendonly ", "a=x-custom"]) + "\r\n")
    [media] = sd.media
    assert media.direction is not None and media.direction.value == "sendonly"
    assert [str(a) for a in media.attributes] == ["x-custom"]
    with pytest.raises(ParseError):
        parse("\r\n".join([*HEAD, "a=bad name:1"]) + "\r\n")
