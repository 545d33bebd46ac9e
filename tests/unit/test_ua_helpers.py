"""Pure helpers of the user agent: registration timing, auth retry, dialling, INFO, sipfrag."""

from __future__ import annotations

import pytest

from pbx.sip.message import Request, Response, parse_message
from pbx.ua.agent import UserAgent
from pbx.ua.call import info_digit
from pbx.ua.client import with_credentials
from pbx.ua.events import Account
from pbx.ua.register import granted_expires, refresh_delay
from pbx.ua.transfer import sipfrag_status, split_refer_to


@pytest.mark.parametrize(
    ("granted", "delay"), [(3600, 3590.0), (300, 290.0), (20, 10.0), (2, 1.0), (0, 0.0)]
)
def test_refresh_comes_before_expiry(granted, delay):
    assert refresh_delay(granted) == delay


def _ok(*headers: tuple[str, str]) -> Response:
    base = [("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx"), ("From", "<sip:a@b>;tag=1"),
            ("To", "<sip:a@b>;tag=2"), ("Call-ID", "c"), ("CSeq", "2 REGISTER")]  # fmt: skip
    return Response(200, "OK", base + list(headers))


def test_granted_expiry_prefers_our_contacts_parameter():
    response = _ok(
        ("Contact", "<sip:1001@127.0.0.1:5999>;expires=999"),
        ("Contact", "<sip:1001@127.0.0.1:5070>;expires=120"),
        ("Expires", "60"),
    )
    assert granted_expires(response, "sip:1001@127.0.0.1:5070", 300) == 120
    assert granted_expires(_ok(("Expires", "60")), "sip:1001@127.0.0.1:5070", 300) == 60
    assert granted_expires(_ok(), "sip:1001@127.0.0.1:5070", 300) == 300


def test_the_authenticated_retry_gets_a_new_branch_cseq_and_one_credentials_header():
    request = Request("INVITE", "sip:1002@pbx", [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bKold"),
        ("From", "<sip:1001@pbx>;tag=a"), ("To", "<sip:1002@pbx>"), ("Call-ID", "c1"),
        ("CSeq", "1 INVITE"), ("Proxy-Authorization", "Digest old"),
        ("Content-Type", "application/sdp"),
    ], b"v=0\r\n")  # fmt: skip
    retry = with_credentials(request, "Proxy-Authorization", 'Digest username="1001"')
    assert retry.headers.get("Via") == "SIP/2.0/UDP 127.0.0.1:5070;rport"
    assert str(retry.cseq) == "2 INVITE"
    assert retry.headers.getall("Proxy-Authorization") == ['Digest username="1001"']
    assert retry.body == b"v=0\r\n" and retry.call_id == "c1" and retry.from_tag == "a"
    assert request.cseq.seq == 1  # the original is untouched
    assert isinstance(parse_message(bytes(retry)), Request)


@pytest.mark.parametrize(
    ("dialled", "uri"),
    [
        ("1002", "sip:1002@127.0.0.1:5070"),
        (" 1002 ", "sip:1002@127.0.0.1:5070"),
        ("+1 (555) 123-4567", "sip:+15551234567@127.0.0.1:5070"),
        ("tel:+15551234;phone-context=x", "sip:+15551234@127.0.0.1:5070"),
        ("sip:bob@example.com", "sip:bob@example.com"),
    ],
)
def test_dialled_strings_become_sip_uris(dialled, uri):
    ua = UserAgent(Account("1001", "pw", "127.0.0.1", 5070))
    assert ua.target_uri(dialled) == uri


def test_a_domain_account_dials_at_its_domain():
    ua = UserAgent(Account("1001", "pw", "10.0.0.1", 5070, domain="pbx.example"))
    assert ua.target_uri("1002") == "sip:1002@pbx.example"


def _info(content_type: str, body: bytes) -> Request:
    return Request("INFO", "sip:a@b", [("Content-Type", content_type)], body)


def test_info_dtmf_bodies():
    assert info_digit(_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n")) == "5"
    assert info_digit(_info("application/dtmf-relay", b"signal = #\r\n")) == "#"
    assert info_digit(_info("application/dtmf", b"*")) == "*"
    assert info_digit(_info("application/dtmf-relay", b"Duration=160\r\n")) is None
    assert info_digit(_info("text/plain", b"Signal=5")) is None


def test_sipfrag_status_lines():
    assert sipfrag_status(b"SIP/2.0 200 OK\r\n") == (200, "OK")
    assert sipfrag_status(b"SIP/2.0 486 Busy Here\r\n") == (486, "Busy Here")
    assert sipfrag_status(b"SIP/2.0 100\r\n") == (100, "")
    assert sipfrag_status(b"garbage") == (None, "")
    assert sipfrag_status(b"") == (None, "")


def test_refer_to_with_escaped_replaces():
    value = "<sip:1003@127.0.0.1:5072?Replaces=abc%40h%3Bto-tag%3D11%3Bfrom-tag%3D22>"
    assert split_refer_to(value) == ("sip:1003@127.0.0.1:5072", "abc@h;to-tag=11;from-tag=22")
    assert split_refer_to("sip:1003@pbx") == ("sip:1003@pbx", None)
