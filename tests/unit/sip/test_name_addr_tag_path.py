"""A From/To with a tag is parsed as its address plus the tag: the same value (or the same
error) as parsing the whole text (pbx.sip.uri.parse_name_addr)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip import uri
from pbx.sip.errors import ParseError


def _either(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except ParseError as exc:
        return ("error", exc.reason)


def _agree(text: str) -> None:
    uri._NAME_ADDR_MEMO.clear()
    assert _either(uri.parse_name_addr, text) == _either(uri._parse_name_addr, text)


@pytest.mark.parametrize(
    "text",
    [
        "<sip:1001@pbx.example>;tag=a1b2",
        '"Front Desk" <sip:1001@pbx.example>;tag=x-1.2',
        "Front Desk <sip:1001@pbx.example;user=phone>;p=1;tag=z",
        "sip:1001@pbx.example;transport=udp;tag=9",
        "<sip:1001@pbx.example> ;tag=abc",
        "<sip:1001@pbx.example>;tag=a;tag=b",  # repeated: the first wins
        "<sip:1001@pbx.example>;TAG=a",
        "<sip:1001@pbx.example>;tag=a b",
        "<sip:1001@pbx.example>;tag=",
        ";tag=abc",
        "<sip:1001@pbx.example;tag=inside>",
        '"a;tag=b" <sip:1001@pbx.example>',
        "<sip:1001@pbx.example;tag=x",
        "Bell, Alexander <sip:a@b>;tag=1",
    ],
)
def test_tagged_forms_agree_with_the_whole_parse(text: str) -> None:
    _agree(text)


def test_the_tag_goes_on_the_memoised_address() -> None:
    uri._NAME_ADDR_MEMO.clear()
    first = uri.parse_name_addr("<sip:1001@pbx.example>;tag=one")
    second = uri.parse_name_addr("<sip:1001@pbx.example>;tag=two")
    assert (first.tag, second.tag) == ("one", "two")
    assert first.uri is second.uri
    assert "<sip:1001@pbx.example>" in uri._NAME_ADDR_MEMO
    assert uri.parse_name_addr("<sip:1001@pbx.example>").params == {}


PIECES = st.sampled_from(
    ["<", ">", "sip:", "a", "@", "h", ";", "tag=", ";tag=", "x", "=", '"', " ", "1", ",",
     ";lr", "\\"]
)  # fmt: skip


@settings(max_examples=800, deadline=None)
@given(st.lists(PIECES, max_size=12).map("".join))
def test_generated_texts_agree(text: str) -> None:
    _agree(text)
