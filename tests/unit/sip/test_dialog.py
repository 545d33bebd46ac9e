"""Dialog creation, route sets, CSeq rules and in-dialog requests (RFC 3261 12-15)."""

from __future__ import annotations

import pytest

from pbx.sip.dialog import (
    Dialog,
    DialogId,
    DialogSet,
    DialogState,
    LocalEndpoint,
    Role,
    build_cancel,
    build_non2xx_ack,
)
from pbx.sip.errors import LocalProtocolError
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.uri import SipUri

ALICE = LocalEndpoint(contact="<sip:alice@192.0.2.10:5060>", sent_by="192.0.2.10:5060")
BOB = LocalEndpoint(contact="<sip:bob@192.0.2.20:5070>", sent_by="192.0.2.20:5070", transport="TCP")
SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
RR = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>")


def invite(
    record_route: tuple[str, ...] = RR,
    *,
    cseq: int = 10,
    uri: str = "sip:bob@example.com",
    from_tag: str | None = "a1",
    contact: str | None = "<sip:alice@192.0.2.10:5060>",
    route: tuple[str, ...] = (),
) -> Request:
    from_ = '"Alice" <sip:alice@example.com>' + (f";tag={from_tag}" if from_tag else "")
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinvite1"),
        ("Max-Forwards", "70"),
        ("From", from_),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", "call-1@192.0.2.10"),
        ("CSeq", f"{cseq} INVITE"),
        *[("Route", r) for r in route],
        *[("Record-Route", r) for r in record_route],
    ]
    if contact:
        headers.append(("Contact", contact))
    return Request("INVITE", uri, headers, SDP)


def answer(
    req: Request,
    status: int,
    tag: str,
    contact: str = "<sip:bob@192.0.2.20:5070>",
) -> Response:
    return req.make_response(status, to_tag=tag, headers=[("Contact", contact)])


def uac_dialog(status: int = 200) -> tuple[Request, Dialog]:
    req = invite()
    return req, Dialog.uac(req, answer(req, status, "b1"), ALICE)


def uas_dialog(status: int = 200, req: Request | None = None) -> tuple[Request, Dialog]:
    req = req or invite()
    return req, Dialog.uas(req, answer(req, status, "b1"), BOB)


def in_dialog(method: str, cseq: int, *, contact: str | None = None) -> Request:
    """A request from Alice (the UAC) to Bob inside the dialog."""
    headers = [
        ("Via", f"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK{method}{cseq}"),
        ("Max-Forwards", "70"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>;tag=b1"),
        ("Call-ID", "call-1@192.0.2.10"),
        ("CSeq", f"{cseq} {method}"),
    ]
    if contact:
        headers.append(("Contact", contact))
    return Request(method, "sip:bob@192.0.2.20:5070", headers)


# ---- creation ----------------------------------------------------------------------


def test_uac_early_dialog_from_180_with_to_tag() -> None:
    req, dialog = uac_dialog(180)
    assert dialog.state is DialogState.EARLY
    assert dialog.role is Role.UAC
    assert dialog.id == DialogId("call-1@192.0.2.10", "a1", "b1")
    assert str(dialog.remote_target) == "sip:bob@192.0.2.20:5070"
    assert [str(r) for r in dialog.route_set] == [RR[1], RR[0]]  # reversed for the UAC
    assert dialog.local_seq == 10
    assert dialog.remote_seq is None


def test_uac_dialog_needs_a_to_tag() -> None:
    req = invite()
    with pytest.raises(LocalProtocolError):
        Dialog.uac(req, req.make_response(180), ALICE)
    with pytest.raises(LocalProtocolError):
        Dialog.uac(req, req.make_response(100, to_tag="x"), ALICE)


def test_uas_dialog_keeps_record_route_order_and_remote_seq() -> None:
    req, dialog = uas_dialog(200)
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.id == DialogId("call-1@192.0.2.10", "b1", "a1")
    assert [str(r) for r in dialog.route_set] == list(RR)
    assert str(dialog.remote_target) == "sip:alice@192.0.2.10:5060"
    assert dialog.remote_seq == 10
    assert dialog.local_seq is None


def test_uas_early_dialog_confirmed_by_sent_2xx_and_ended_by_sent_486() -> None:
    req, early = uas_dialog(180)
    assert early.state is DialogState.EARLY
    early.response_sent(answer(req, 200, "b1"))
    assert early.state is DialogState.CONFIRMED
    _, other = uas_dialog(183)
    other.response_sent(req.make_response(486, to_tag="b1"))
    assert other.state is DialogState.TERMINATED


def test_secure_flag_needs_tls_and_sips() -> None:
    req = invite(uri="sips:bob@example.com")
    assert Dialog.uac(req, answer(req, 200, "b1"), ALICE, over_tls=True).secure is True
    assert Dialog.uac(req, answer(req, 200, "b1"), ALICE, over_tls=False).secure is False
    plain = invite()
    assert Dialog.uac(plain, answer(plain, 200, "b1"), ALICE, over_tls=True).secure is False


# ---- in-dialog requests -------------------------------------------------------------


def test_uac_bye_uses_remote_target_reversed_routes_and_next_cseq() -> None:
    _, dialog = uac_dialog()
    bye = dialog.bye()
    assert bye.method == "BYE"
    assert str(bye.uri) == "sip:bob@192.0.2.20:5070"
    assert bye.headers.getall("Route") == [RR[1], RR[0]]
    assert bye.cseq.seq == 11 and bye.cseq.method == "BYE"
    assert bye.from_tag == "a1" and bye.to_tag == "b1"
    assert bye.call_id == "call-1@192.0.2.10"
    assert bye.via.branch is not None and bye.via.branch.startswith("z9hG4bK")
    assert bye.via.sent_by == ("192.0.2.10", 5060)
    assert "Contact" not in bye.headers
    assert dialog.bye_sent is True


def test_uas_bye_starts_its_own_cseq_and_swaps_tags() -> None:
    _, dialog = uas_dialog()
    bye = dialog.bye()
    assert str(bye.uri) == "sip:alice@192.0.2.10:5060"
    assert bye.headers.getall("Route") == list(RR)
    assert bye.from_tag == "b1" and bye.to_tag == "a1"
    assert bye.cseq.seq == 1
    assert bye.via.transport == "TCP"
    assert dialog.bye().cseq.seq == 2


def test_strict_route_puts_first_route_in_request_uri() -> None:
    strict = ("<sip:p1.example.com;lr>", "<sip:p2.example.com;method=INVITE;transport=tcp>")
    req = invite(strict)  # reversed at the UAC: p2 (no lr) comes first
    dialog = Dialog.uac(req, answer(req, 200, "b1"), ALICE)
    info = dialog.info(b"Signal=5\r\nDuration=160\r\n", "application/dtmf-relay")
    assert isinstance(info.uri, SipUri)
    assert info.uri.host == "p2.example.com"
    assert "method" not in info.uri.params  # not allowed in a Request-URI (19.1.1)
    assert info.uri.params.get("transport") == "tcp"
    assert info.headers.getall("Route") == ["<sip:p1.example.com;lr>", "<sip:bob@192.0.2.20:5070>"]
    assert info.content_type == "application/dtmf-relay"


def test_no_route_set_no_route_header() -> None:
    req = invite(())
    dialog = Dialog.uac(req, answer(req, 200, "b1"), ALICE)
    bye = dialog.bye()
    assert "Route" not in bye.headers
    assert str(bye.uri) == "sip:bob@192.0.2.20:5070"


def test_reinvite_carries_sdp_and_contact_and_blocks_a_second_one() -> None:
    _, dialog = uac_dialog()
    reinvite = dialog.reinvite(SDP)
    assert reinvite.method == "INVITE"
    assert reinvite.body == SDP
    assert reinvite.content_type == "application/sdp"
    assert reinvite.headers.get("Contact") == ALICE.contact
    assert reinvite.cseq.seq == 11
    with pytest.raises(LocalProtocolError):
        dialog.reinvite(SDP)  # 14.1: one INVITE at a time
    dialog.receive_response(
        reinvite.make_response(200, headers=[("Contact", "<sip:bob@198.51.100.7:5070>")])
    )
    assert str(dialog.remote_target) == "sip:bob@198.51.100.7:5070"  # target refresh
    assert dialog.invite_pending is False
    assert dialog.reinvite(SDP).cseq.seq == 12


def test_failed_reinvite_keeps_dialog_and_target() -> None:
    _, dialog = uac_dialog()
    reinvite = dialog.reinvite(SDP)
    dialog.receive_response(reinvite.make_response(488))
    assert dialog.state is DialogState.CONFIRMED
    assert str(dialog.remote_target) == "sip:bob@192.0.2.20:5070"


def test_refer_and_update() -> None:
    _, dialog = uac_dialog()
    refer = dialog.refer("sip:carol@example.com", referred_by="<sip:alice@example.com>")
    assert refer.headers.get("Refer-To") == "<sip:carol@example.com>"
    assert refer.headers.get("Referred-By") == "<sip:alice@example.com>"
    assert refer.headers.get("Contact") == ALICE.contact
    update = dialog.update(SDP)
    assert update.cseq.seq == refer.cseq.seq + 1
    assert update.content_type == "application/sdp"
    dialog.receive_response(
        update.make_response(200, headers=[("Contact", "<sip:bob@203.0.113.9>")])
    )
    assert str(dialog.remote_target) == "sip:bob@203.0.113.9"


def test_ack_and_cancel_are_not_created_as_new_requests() -> None:
    _, dialog = uac_dialog()
    for method in ("ACK", "CANCEL"):
        with pytest.raises(LocalProtocolError):
            dialog.create_request(method)


def test_terminated_dialog_refuses_requests() -> None:
    _, dialog = uac_dialog()
    dialog.terminate()
    with pytest.raises(LocalProtocolError):
        dialog.bye()


# ---- ACK for 2xx (13.2.2.4, RFC 6026) -------------------------------------------------


def test_ack_for_2xx_same_cseq_number_new_branch_and_resent_identically() -> None:
    req, dialog = uac_dialog()
    ok = answer(req, 200, "b1")
    ack = dialog.ack_for(ok)
    assert ack.method == "ACK"
    assert ack.cseq.seq == 10 and ack.cseq.method == "ACK"
    assert ack.via.branch != req.via.branch
    assert ack.headers.getall("Route") == [RR[1], RR[0]]
    assert str(ack.uri) == "sip:bob@192.0.2.20:5070"
    again = dialog.ack_for(answer(req, 200, "b1"))  # the 2xx retransmitted
    assert again is ack
    assert bytes(again) == bytes(ack)


def test_ack_refuses_non_2xx_and_foreign_cseq() -> None:
    req, dialog = uac_dialog()
    with pytest.raises(LocalProtocolError):
        dialog.ack_for(req.make_response(486, to_tag="b1"))
    other = invite(cseq=99)
    with pytest.raises(LocalProtocolError):
        dialog.ack_for(answer(other, 200, "b1"))


def test_ack_for_reinvite_uses_reinvite_cseq() -> None:
    _, dialog = uac_dialog()
    reinvite = dialog.reinvite(SDP)
    ok = reinvite.make_response(200)
    dialog.receive_response(ok)
    assert dialog.ack_for(ok).cseq.seq == reinvite.cseq.seq


# ---- UAS side: incoming in-dialog requests (12.2.2) ------------------------------------


def test_lower_cseq_is_rejected_with_500() -> None:
    _, dialog = uas_dialog()
    assert dialog.receive_request(in_dialog("INFO", 11)) is None
    assert dialog.remote_seq == 11
    reply = dialog.receive_request(in_dialog("INFO", 9))
    assert reply is not None and reply.status == 500
    assert reply.to_tag == "b1"
    assert dialog.remote_seq == 11


def test_ack_and_cancel_skip_the_cseq_order() -> None:
    _, dialog = uas_dialog()
    assert dialog.receive_request(in_dialog("INFO", 12)) is None
    assert dialog.receive_request(in_dialog("ACK", 10)) is None
    assert dialog.acked is True
    assert dialog.remote_seq == 12


def test_incoming_reinvite_refreshes_target_and_resets_ack() -> None:
    _, dialog = uas_dialog()
    dialog.receive_request(in_dialog("ACK", 10))
    reply = dialog.receive_request(in_dialog("INVITE", 11, contact="<sip:alice@198.51.100.1>"))
    assert reply is None
    assert str(dialog.remote_target) == "sip:alice@198.51.100.1"
    assert dialog.invite_seq == 11 and dialog.acked is False


def test_glare_answers_491() -> None:
    _, dialog = uas_dialog()
    dialog.reinvite(SDP)
    reply = dialog.receive_request(in_dialog("INVITE", 11))
    assert reply is not None and reply.status == 491


def test_incoming_bye_terminates() -> None:
    _, dialog = uas_dialog()
    assert dialog.receive_request(in_dialog("BYE", 11)) is None
    assert dialog.state is DialogState.TERMINATED


@pytest.mark.parametrize("status", [408, 481])
def test_408_481_to_in_dialog_request_terminates(status: int) -> None:
    _, dialog = uac_dialog()
    info = dialog.info(b"x", "text/plain")
    dialog.receive_response(info.make_response(status))
    assert dialog.state is DialogState.TERMINATED


def test_bye_final_response_terminates_uac() -> None:
    _, dialog = uac_dialog()
    bye = dialog.bye()
    assert dialog.state is DialogState.CONFIRMED
    dialog.receive_response(bye.make_response(200))
    assert dialog.state is DialogState.TERMINATED


def test_rfc2543_peer_without_from_tag_or_contact() -> None:
    req = invite((), from_tag=None, contact=None)
    _, dialog = uas_dialog(200, req)
    assert dialog.id.remote_tag is None
    assert str(dialog.remote_target) == "sip:alice@example.com"  # From URI stands in
    bye = dialog.bye()
    assert bye.to_tag is None
    assert bye.from_tag == "b1"


# ---- early dialogs, confirmation and failure -----------------------------------------


def test_early_dialog_confirmed_by_2xx_recomputes_route_set_and_target() -> None:
    req, dialog = uac_dialog(183)
    ok = req.make_response(200, to_tag="b1", headers=[("Contact", "<sip:bob@203.0.113.5>")])
    ok.headers.remove("Record-Route")
    ok.headers.add("Record-Route", "<sip:only.example.com;lr>")
    dialog.receive_response(ok)
    assert dialog.state is DialogState.CONFIRMED
    assert [str(r) for r in dialog.route_set] == ["<sip:only.example.com;lr>"]
    assert str(dialog.remote_target) == "sip:bob@203.0.113.5"


def test_early_dialog_ended_by_non_2xx_final() -> None:
    req, dialog = uac_dialog(180)
    dialog.receive_response(req.make_response(486, to_tag="b1"))
    assert dialog.state is DialogState.TERMINATED


# ---- DialogSet: lookup and forking -------------------------------------------------------


def test_dialog_set_finds_dialog_of_request_and_response() -> None:
    table = DialogSet()
    _, uas = uas_dialog()
    table.add(uas)
    assert table.find_for_request(in_dialog("BYE", 11)) is uas
    assert table.find_for_request(invite()) is None  # no To tag: not in a dialog
    req, uac = uac_dialog()
    table = DialogSet()
    table.add(uac)
    bye = uac.bye()
    assert table.find_for_response(bye.make_response(200)) is uac
    assert DialogId("call-1@192.0.2.10", "a1", "b1") in table
    assert table.remove(uac.id) is uac and len(table) == 0


def test_forked_invite_first_2xx_confirms_and_ends_other_early_dialogs() -> None:
    table = DialogSet()
    req = invite()
    one = table.invite_response(req, answer(req, 180, "b1"), ALICE).dialog
    two = table.invite_response(req, answer(req, 183, "b2"), ALICE).dialog
    assert one is not None and two is not None and one is not two
    assert len(table.siblings("call-1@192.0.2.10", "a1")) == 2
    outcome = table.invite_response(req, answer(req, 200, "b2"), ALICE)
    assert outcome.dialog is two
    assert two.state is DialogState.CONFIRMED
    assert outcome.terminated == (one,)
    assert one.state is DialogState.TERMINATED
    late = table.invite_response(req, answer(req, 200, "b3"), ALICE)
    assert late.dialog is not None and late.dialog.redundant is True
    assert late.dialog.state is DialogState.CONFIRMED
    assert late.terminated == ()
    assert table.invite_response(req, answer(req, 180, "b4"), ALICE).dialog is None
    assert [d.id.remote_tag for d in table.purge()] == ["b1"]
    assert len(table) == 2


def test_forked_invite_final_failure_ends_all_early_dialogs() -> None:
    table = DialogSet()
    req = invite()
    table.invite_response(req, answer(req, 180, "b1"), ALICE)
    table.invite_response(req, answer(req, 180, "b2"), ALICE)
    assert table.invite_response(req, req.make_response(100), ALICE).dialog is None
    outcome = table.invite_response(req, req.make_response(480, to_tag="b3"), ALICE)
    assert outcome.dialog is None
    assert sorted(d.id.remote_tag or "" for d in outcome.terminated) == ["b1", "b2"]
    assert all(d.state is DialogState.TERMINATED for d in table)


# ---- CANCEL and non-2xx ACK -----------------------------------------------------------------


def test_cancel_matches_the_invite() -> None:
    req = invite(route=("<sip:out.example.com;lr>",))
    cancel = build_cancel(req)
    assert cancel.method == "CANCEL"
    assert str(cancel.uri) == str(req.uri)
    assert cancel.headers.getall("Via") == req.headers.getall("Via")[:1]
    assert cancel.via.branch == "z9hG4bKinvite1"
    assert cancel.cseq.seq == 10 and cancel.cseq.method == "CANCEL"
    assert cancel.headers.get("From") == req.headers.get("From")
    assert cancel.headers.get("To") == req.headers.get("To")
    assert cancel.call_id == req.call_id
    assert cancel.headers.getall("Route") == ["<sip:out.example.com;lr>"]
    assert cancel.body == b""
    with pytest.raises(LocalProtocolError):
        build_cancel(in_dialog("BYE", 3))


def test_non2xx_ack_takes_to_from_the_response() -> None:
    req = invite()
    busy = req.make_response(486, to_tag="b9")
    ack = build_non2xx_ack(req, busy)
    assert ack.method == "ACK"
    assert ack.via.branch == "z9hG4bKinvite1"
    assert ack.to_tag == "b9"
    assert ack.cseq.seq == 10 and ack.cseq.method == "ACK"
    with pytest.raises(LocalProtocolError):
        build_non2xx_ack(req, answer(req, 200, "b1"))


def test_callee_cannot_bye_an_early_dialog() -> None:
    _, early = uas_dialog(180)
    with pytest.raises(LocalProtocolError):
        early.bye()
    _, caller_early = uac_dialog(180)
    assert caller_early.bye().method == "BYE"  # the caller may (15)


def test_callee_accepts_the_callers_bye_on_an_early_dialog() -> None:
    _, early = uas_dialog(180)
    assert early.receive_request(in_dialog("BYE", 11)) is None  # RFC 3261 15, 15.1.2
    assert early.state is DialogState.TERMINATED


def test_cseq_boundary_one_lower_rejected_equal_accepted() -> None:
    _, dialog = uas_dialog()  # remote_seq 10 from the INVITE
    reply = dialog.receive_request(in_dialog("INFO", 9))
    assert reply is not None and reply.status == 500
    assert dialog.receive_request(in_dialog("INFO", 10)) is None
    assert dialog.receive_request(in_dialog("INFO", 2**31 - 1)) is None
    assert dialog.remote_seq == 2**31 - 1


def test_retransmitted_2xx_through_dialog_set_gets_the_same_ack() -> None:
    table = DialogSet()
    req = invite()
    first = table.invite_response(req, answer(req, 200, "b1"), ALICE)
    assert first.dialog is not None
    ack = first.dialog.ack_for(answer(req, 200, "b1"))
    again = table.invite_response(req, answer(req, 200, "b1"), ALICE)
    assert again.dialog is first.dialog and again.dialog.redundant is False
    assert again.dialog.ack_for(answer(req, 200, "b1")) is ack
    first.dialog.bye()
    first.dialog.receive_response(req.make_response(200))  # any final ends it
    late = table.invite_response(req, answer(req, 200, "b1"), ALICE)
    assert late.dialog is first.dialog  # a stray retransmission: re-ACK, no new call
    assert late.dialog.ack_for(answer(req, 200, "b1")) is ack


def test_2xx_from_a_branch_whose_early_dialog_was_ended_is_redundant() -> None:
    table = DialogSet()
    req = invite()
    table.invite_response(req, answer(req, 180, "b1"), ALICE)
    table.invite_response(req, answer(req, 180, "b2"), ALICE)
    table.invite_response(req, answer(req, 200, "b2"), ALICE)
    late = table.invite_response(req, answer(req, 200, "b1"), ALICE)
    assert late.dialog is not None
    assert late.dialog.redundant is True
    assert late.dialog.state is DialogState.CONFIRMED
    ack = late.dialog.ack_for(answer(req, 200, "b1"))
    bye = late.dialog.bye()  # 13.2.2.4: ACK it, then end it
    assert (ack.to_tag, bye.to_tag) == ("b1", "b1")
    assert table.get(late.dialog.id) is late.dialog


def test_in_dialog_requests_check_what_the_caller_adds_and_keep_canonical_names() -> None:
    _, dialog = uac_dialog()
    with pytest.raises(LocalProtocolError, match="CR or LF"):
        dialog.bye(headers=[("User-Agent", "evil\r\nX-Injected: 1")])
    with pytest.raises(LocalProtocolError, match="CR or LF in the value of Content-Type"):
        dialog.info(b"Signal=1\r\n", "application/dtmf-relay\r\nX: 1")
    with pytest.raises(LocalProtocolError, match="bad header name"):
        dialog.bye(headers=[("User Agent", "DeskPBX")])
    bye = dialog.bye(headers=[("user-agent", "DeskPBX")])
    names = [name for name, _ in bye.headers]
    assert names == ["Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq", "Route", "Route",
                     "User-Agent"]  # fmt: skip
    assert bye.max_forwards == 70 and bye.headers.get("User-Agent") == "DeskPBX"
    assert parse_message(bytes(bye)).headers.getall("Route") == bye.headers.getall("Route")
