"""Refer-To parsing for the PBX's REFER handling (RFC 3515 2.1, RFC 3891 3)."""

from __future__ import annotations

import pytest

from pbx.b2bua_refer import refer_target


@pytest.mark.parametrize(
    ("refer_to", "number", "replaces"),
    [
        ("<sip:1003@127.0.0.1:5060>", "1003", None),
        ("sip:1003@pbx.example.com;transport=udp", "1003", None),
        ('"Carol" <sips:1003@pbx.example.com>', "1003", None),
        ("<sip:1003;ext=1@pbx>", "1003", None),
        ("<tel:+15551234>", "+15551234", None),
        ("<sip:pbx.example.com>", None, None),
        ("<mailto:carol@example.com>", None, None),
        (
            "<sip:1003@10.0.0.3?Replaces=abc%40host%3Bto-tag%3D12%3Bfrom-tag%3D34>",
            "1003",
            "abc@host;to-tag=12;from-tag=34",
        ),
    ],
)
def test_refer_target_names_the_number_and_replaces(refer_to, number, replaces):
    assert refer_target(refer_to) == (number, replaces)
