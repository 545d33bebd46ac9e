"""From and To of in-dialog requests: built once per dialog, exact each time (RFC 3261 12.2.1.1)."""

from __future__ import annotations

from tests.unit.sip.test_dialog import uac_dialog, uas_dialog


def test_every_request_of_a_uac_dialog_carries_the_same_from_and_to() -> None:
    _, dialog = uac_dialog()
    info = dialog.info(b"Signal=1\r\n", "application/dtmf-relay")
    update = dialog.update()
    bye = dialog.bye()
    for request in (info, update, bye):
        assert request.headers.get("From") == '"Alice" <sip:alice@example.com>;tag=a1'
        assert request.headers.get("To") == "<sip:bob@example.com>;tag=b1"
    assert [r.cseq.seq for r in (info, update, bye)] == [11, 12, 13]


def test_requests_of_a_uas_dialog_swap_the_tags() -> None:
    _, dialog = uas_dialog()
    reinvite = dialog.reinvite(b"v=0\r\n")
    bye_headers = dialog.bye().headers
    for headers in (reinvite.headers, bye_headers):
        assert headers.get("From") == "<sip:bob@example.com>;tag=b1"
        assert headers.get("To") == '"Alice" <sip:alice@example.com>;tag=a1'
