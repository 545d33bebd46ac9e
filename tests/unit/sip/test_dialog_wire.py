"""Dialog requests on the wire: they serialize, parse back and pass the UAS checks;
CSeq order holds for any sequence of incoming numbers (RFC 3261 12.2.2)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pbx.sip.checks import check_request
from pbx.sip.dialog import Dialog, DialogState, LocalEndpoint, build_cancel, build_non2xx_ack
from pbx.sip.message import Request, parse_message
from pbx.sip.validate import validate

LOCAL = LocalEndpoint(contact="<sip:alice@192.0.2.10:5060>", sent_by="192.0.2.10:5060")
ALLOWED = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REFER", "UPDATE")
SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"


def invite() -> Request:
    return Request(
        "INVITE",
        "sip:bob@example.com",
        [
            ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKwire1"),
            ("Max-Forwards", "70"),
            ("From", '"Alice Smith" <sip:alice@example.com>;tag=a1'),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "wire-1@192.0.2.10"),
            ("CSeq", "5 INVITE"),
            ("Contact", "<sip:alice@192.0.2.10:5060>"),
            ("Record-Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
        ],
        SDP,
    )


def confirmed() -> tuple[Request, Dialog]:
    req = invite()
    ok = req.make_response(200, to_tag="b1", headers=[("Contact", "<sip:bob@192.0.2.20>")])
    return req, Dialog.uac(req, ok, LOCAL)


def roundtrip(req: Request) -> Request:
    again = parse_message(bytes(req))
    assert isinstance(again, Request)
    validate(again)
    types = ("application/sdp", "application/dtmf-relay")
    assert check_request(again, allowed_methods=ALLOWED, accepted_content_types=types) is None
    assert again.method == req.method
    assert str(again.uri) == str(req.uri)
    assert str(again.cseq) == str(req.cseq)
    assert again.body == req.body
    return again


def test_built_requests_survive_the_wire() -> None:
    req, dialog = confirmed()
    ok = req.make_response(200, to_tag="b1")
    built = [
        dialog.ack_for(ok),
        dialog.info(b"Signal=1\r\nDuration=100\r\n", "application/dtmf-relay"),
        dialog.refer("sip:carol@example.com"),
        dialog.update(SDP),
        dialog.bye(),
        build_cancel(req),
        build_non2xx_ack(req, req.make_response(486, to_tag="b2")),
    ]
    for sent in built:
        got = roundtrip(sent)
        assert got.from_.display == "Alice Smith"
        assert got.call_id == "wire-1@192.0.2.10"
    assert [r.cseq.seq for r in built] == [5, 6, 7, 8, 9, 5, 5]
    assert roundtrip(built[0]).headers.getall("Route") == [
        "<sip:p2.example.com;lr>",
        "<sip:p1.example.com;lr>",
    ]


def test_reinvite_survives_the_wire() -> None:
    _, dialog = confirmed()
    got = roundtrip(dialog.reinvite(SDP))
    assert got.content_type == "application/sdp"
    assert str(got.contacts[0].uri) == "sip:alice@192.0.2.10:5060"


def in_dialog(seq: int) -> Request:
    return Request(
        "INFO",
        "sip:alice@192.0.2.10:5060",
        [
            ("Via", f"SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKp{seq}"),
            ("Max-Forwards", "70"),
            ("From", "<sip:bob@example.com>;tag=b1"),
            ("To", "<sip:alice@example.com>;tag=a1"),
            ("Call-ID", "wire-1@192.0.2.10"),
            ("CSeq", f"{seq} INFO"),
        ],
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**31 - 1), min_size=1, max_size=20))
def test_lower_cseq_always_500_others_accepted(seqs: list[int]) -> None:
    _, dialog = confirmed()  # UAC: remote sequence number still empty
    highest: int | None = None
    for seq in seqs:
        reply = dialog.receive_request(in_dialog(seq))
        if highest is not None and seq < highest:
            assert reply is not None and reply.status == 500
        else:
            assert reply is None
            highest = seq
        assert dialog.remote_seq == highest
    assert dialog.state is DialogState.CONFIRMED


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["bye", "info", "update", "refer"]), min_size=1, max_size=10))
def test_local_cseq_strictly_increases(ops: list[str]) -> None:
    _, dialog = confirmed()
    seqs = []
    for op in ops:
        if dialog.state is DialogState.TERMINATED or dialog.bye_sent:
            break
        builder = {
            "bye": dialog.bye,
            "info": lambda: dialog.info(b"x", "text/plain"),
            "update": dialog.update,
            "refer": lambda: dialog.refer("sip:c@example.com"),
        }[op]
        seqs.append(builder().cseq.seq)
    assert seqs == list(range(6, 6 + len(seqs)))
