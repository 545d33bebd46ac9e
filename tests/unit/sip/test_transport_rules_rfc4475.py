"""Via stamping and response routing on the RFC 4475 section 3.1.1 valid requests.

The torture messages have folded, oddly spaced and multi-valued Via headers;
stamping must keep every Via, in order, and the result must still parse.
"""

from __future__ import annotations

import pytest

from pbx.net.tcp import StreamFramer
from pbx.net.transport import stamped_bytes
from pbx.sip.message import Request, parse_message
from pbx.sip.transport import NextHop, default_port, response_next_hop, stamp_request
from tests.conftest import rfc4475_message

VALID_REQUESTS = [
    "wsinv", "intmeth", "esc01", "escnull", "esc02", "lwsdisp", "longreq", "dblreq",
    "semiuri", "transports", "mpart01",
]  # fmt: skip

SOURCE = ("203.0.113.50", 40123)


@pytest.mark.parametrize("name", VALID_REQUESTS)
def test_stamp_keeps_every_via_and_reparses(name: str) -> None:
    request = parse_message(rfc4475_message(name))
    assert isinstance(request, Request)
    before = request.vias
    stamp_request(request, SOURCE)
    again = parse_message(bytes(request))
    assert isinstance(again, Request)
    after = again.vias
    assert len(after) == len(before)
    top = after[0]
    assert top.received == SOURCE[0]  # no sent-by in the corpus is 203.0.113.50
    assert (top.host, top.port, top.transport, top.branch) == (
        before[0].host,
        before[0].port,
        before[0].transport,
        before[0].branch,
    )
    assert [str(v) for v in after[1:]] == [str(v) for v in before[1:]]
    assert again.call_id == request.call_id and again.body == request.body


@pytest.mark.parametrize("name", VALID_REQUESTS)
def test_response_goes_to_the_source_address(name: str) -> None:
    """The source IP; the source port when rport was asked for (RFC 3581 5: only mpart01
    does), else the sent-by port (RFC 3261 18.2.2)."""
    request = parse_message(stamped_bytes(rfc4475_message(name), SOURCE))
    assert isinstance(request, Request)
    via = request.make_response(200, to_tag="t").via
    reliable = via.transport in ("TCP", "TLS", "SCTP")
    port = SOURCE[1] if name == "mpart01" else via.port or default_port(via.transport)
    assert (via.rport == SOURCE[1]) is (name == "mpart01")
    expected = NextHop(SOURCE[0], port, via.transport, "conn" if reliable else None)
    assert response_next_hop(via, "conn") == expected


def test_transports_dat_keeps_the_unknown_transports_below_the_top() -> None:
    """RFC 4475 3.1.1.10: Vias with unknown transports are kept as they are."""
    request = parse_message(rfc4475_message("transports"))
    assert isinstance(request, Request)
    transports = [v.transport for v in request.vias]
    stamp_request(request, SOURCE)
    again = parse_message(bytes(request))
    assert [v.transport for v in again.vias] == transports
    assert len(transports) > 1


@pytest.mark.parametrize("name", [n for n in VALID_REQUESTS if n != "dblreq"])
def test_stream_framer_delivers_each_torture_request_whole(name: str) -> None:
    data = rfc4475_message(name)
    framer = StreamFramer(65535)
    messages = framer.feed(data + data)
    assert messages == [data, data]
