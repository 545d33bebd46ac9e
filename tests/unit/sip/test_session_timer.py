"""RFC 4028 session timers as the answering side (pbx.sip.session_timer), on a fake clock."""

from __future__ import annotations

import pytest

from pbx.sip.errors import ParseError
from pbx.sip.message import Request, parse_message
from pbx.sip.session_timer import (
    Agreed,
    Refresher,
    SessionExpires,
    SessionTimer,
    TooBrief,
    negotiate,
    parse_min_se,
    parse_session_expires,
)


def invite(*headers: str) -> Request:
    lines = [
        "INVITE sip:1002@192.0.2.10 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-st",
        "From: <sip:1001@192.0.2.10>;tag=a",
        "To: <sip:1002@192.0.2.10>",
        "Call-ID: st@192.0.2.1",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
        *headers,
        "Content-Length: 0",
    ]
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def test_the_header_and_its_refresher_parse_and_bad_ones_are_a_400():
    assert parse_session_expires("1800;refresher=uac") == SessionExpires(1800, "uac")
    assert parse_session_expires(" 90 ; Refresher=UAS ") == SessionExpires(90, "uas")
    assert parse_session_expires("600") == SessionExpires(600, None)
    assert parse_min_se(None) == 0 and parse_min_se("120") == 120
    for bad in ("", "-5", "1e3", "600;refresher=proxy", "9" * 11):
        with pytest.raises(ParseError):
            parse_session_expires(bad)
    with pytest.raises(ParseError):
        parse_min_se("soon")


def test_no_session_expires_means_no_timer_even_from_a_phone_that_supports_it():
    assert negotiate(invite(), 90, True) is None
    assert negotiate(invite("Supported: timer, replaces"), 90, True) is None


def test_a_phone_that_supports_timers_refreshes_itself_unless_it_asks_us_to():
    asked = invite("Supported: replaces, timer", "Session-Expires: 1800")
    assert negotiate(asked, 90, True) == Agreed(1800, Refresher.THEM)
    asked = invite("Supported: timer", "Session-Expires: 600;refresher=uac")
    assert negotiate(asked, 90, False) == Agreed(600, Refresher.THEM)
    asked = invite("Supported: timer", "Session-Expires: 600;refresher=uas")
    assert negotiate(asked, 90, True) == Agreed(600, Refresher.US)
    assert negotiate(asked, 90, False) is None  # we could not refresh it: no timer at all


def test_an_interval_below_min_se_is_422_with_the_larger_of_ours_and_the_requests():
    asked = invite("Supported: timer", "Session-Expires: 60")
    assert negotiate(asked, 90, True) == TooBrief(90)
    asked = invite("Supported: timer", "Session-Expires: 100", "Min-SE: 120")
    assert negotiate(asked, 90, True) == TooBrief(120)


def test_a_peer_without_timer_support_is_never_422_it_gets_a_raised_interval_we_refresh():
    """Errata 1687: a peer that knows nothing of timers (a proxy added the header) cannot
    retry after 422; the interval is raised to Min-SE and we are the refresher."""
    asked = invite("Session-Expires: 60")
    assert negotiate(asked, 90, True) == Agreed(90, Refresher.US)
    assert negotiate(invite("Session-Expires: 1800"), 90, True) == Agreed(1800, Refresher.US)
    assert negotiate(asked, 90, False) is None


def test_response_and_request_headers_name_the_refresher_from_each_transactions_view():
    them, us = Agreed(1800, Refresher.THEM), Agreed(90, Refresher.US)
    assert them.response_headers() == [
        ("Session-Expires", "1800;refresher=uac"),
        ("Require", "timer"),
    ]
    assert us.response_headers() == [("Session-Expires", "90;refresher=uas")]
    assert us.request_headers() == [("Session-Expires", "90;refresher=uac"), ("Supported", "timer")]
    assert them.request_headers() == [
        ("Session-Expires", "1800;refresher=uas"),
        ("Supported", "timer"),
    ]


def test_the_peers_refresh_is_late_at_the_interval_less_min_32_or_a_third():
    timer = SessionTimer(Agreed(1800, Refresher.THEM), now=100.0)
    assert not timer.expired(100.0 + 1767.9)
    assert timer.expired(100.0 + 1768.0)  # 1800 - 32
    assert not timer.refresh_due(100.0 + 1000)  # they refresh, not us
    timer.refreshed(Agreed(90, Refresher.THEM), now=1000.0)
    assert not timer.expired(1059.9) and timer.expired(1060.0)  # 90 - 30


def test_we_refresh_at_half_the_interval_once_until_answered():
    timer = SessionTimer(Agreed(90, Refresher.US), now=0.0)
    assert not timer.refresh_due(44.9)
    assert timer.refresh_due(45.0)
    timer.refreshing = True
    assert not timer.refresh_due(50.0)  # one refresh out at a time
    assert timer.expired(60.0)  # unanswered: the session runs out as for a silent peer
    timer.refreshed(timer.agreed, now=50.0)
    assert not timer.refreshing and timer.refresh_due(95.0) and not timer.expired(95.0)
