"""SipCore keeps the stamped top Via parsed (RFC 3261 18.2.1, RFC 3581 4).

The core rewrites the top Via of every request it receives and puts the stamped value
back into the message's parse cache, so nothing parses the new text again. That is only
right if the cached Via is exactly what the rewritten text parses to: these tests
compare the two for ordinary, odd and torture-test spellings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.sip.core import SipCore
from pbx.sip.events import RequestReceived
from pbx.sip.headers import Via
from pbx.sip.message import Request, parse_message
from tests.conftest import rfc4475_path
from tests.unit.sip.test_transaction_support import CONFIG

VIAS = [
    "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK776asdhds;rport",
    "SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1-1;rport",  # same host: received anyway
    "SIP/2.0/udp PHONE.example.com;branch=z9hG4bKa1",  # no rport, a name: received added
    "SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bKb2;received=10.9.9.9;rport=1234",
    "SIP / 2.0 / UDP 10.0.0.2 : 5060 ; branch = z9hG4bKc3 ; rport",
    "SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKd4;rport",
    "SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKe5;rport, SIP/2.0/UDP 10.0.0.4;branch=z9hG4bKf6",
    'SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKg7;ttl=1;maddr=239.1.1.1;x="q;uoted"',
]
SOURCES = [("203.0.113.7", 41234), ("2001:db8::7", 5062)]


def _request(via: str) -> bytes:
    return (
        "OPTIONS sip:pbx@example.com SIP/2.0\r\n"
        f"Via: {via}\r\n"
        "From: <sip:a@example.com>;tag=1\r\nTo: <sip:pbx@example.com>\r\n"
        "Call-ID: via-cache-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _received(data: bytes, source: tuple[str, int]) -> Request:
    core = SipCore(CONFIG)
    core.receive(data, source, "UDP", 0.0)
    events = [e for e in core.pop_events() if isinstance(e, RequestReceived)]
    assert len(events) == 1, core.pop_outgoing()
    return events[0].request


def _reparsed_top(request: Request) -> Via:
    """The top Via as a fresh parse of the rewritten message would give it."""
    return parse_message(bytes(request)).via


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("via", VIAS)
def test_cached_stamped_via_equals_a_fresh_parse(via: str, source: tuple[str, int]) -> None:
    request = _received(_request(via), source)
    cached = request.via
    assert cached == _reparsed_top(request)
    assert request.via is cached  # read from the cache, not parsed again
    assert cached.received is not None  # every spelling above gets `received`
    assert [v.branch for v in request.vias] == [v.branch for v in parse_message(
        bytes(request)).vias]  # fmt: skip


def test_stamped_values_are_the_source_address() -> None:
    request = _received(_request(VIAS[0]), ("203.0.113.7", 41234))
    assert request.via.received == "203.0.113.7"
    assert request.via.rport == 41234
    assert request.headers.get("Via") == (
        "SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK776asdhds;rport=41234;received=203.0.113.7"
    )


def test_rfc4475_requests_keep_a_cache_equal_to_a_fresh_parse() -> None:
    folder = rfc4475_path()
    if folder is None:
        pytest.skip("RFC 4475 torture messages not found at <repo parent>/shared/conformance")
    checked = 0
    for path in sorted(Path(folder).glob("*.dat")):
        core = SipCore(CONFIG)
        core.receive(path.read_bytes(), ("198.51.100.1", 5060), "UDP", 0.0)
        for event in core.pop_events():
            if isinstance(event, RequestReceived):
                assert event.request.via == _reparsed_top(event.request), path.name
                checked += 1
    assert checked >= 15  # the valid requests of the corpus reach the TU


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("via", VIAS)
def test_cached_via_list_equals_a_fresh_parse(via: str, source: tuple[str, int]) -> None:
    """The core also keeps the whole Via list parsed when the stamped Via is the only one;
    it must equal what the rewritten text parses to, for one Via and for several."""
    request = _received(_request(via), source)
    fresh = parse_message(bytes(request)).vias
    assert request.vias == fresh
    assert len(fresh) == via.count("SIP/2.0") + via.count("SIP / 2.0")
    assert request.vias[0] is request.via  # the top one is the stamped Via itself


def test_a_lone_stamped_via_needs_no_second_split() -> None:
    """One Via: the parsed list is in the cache before anyone reads it (validate() reads
    every Via of every request), holding exactly the stamped top Via."""
    request = _received(_request(VIAS[0]), ("203.0.113.7", 41234))
    cached = request.headers._cache.get(("Via", "vias"))
    assert cached == [request.via]
    assert cached[0].received == "203.0.113.7" and cached[0].rport == 41234


def test_several_vias_are_split_on_first_read() -> None:
    request = _received(_request(VIAS[6]), ("203.0.113.7", 41234))
    assert ("Via", "vias") not in request.headers._cache
    assert [v.host for v in request.vias] == ["10.0.0.3", "10.0.0.4"]
