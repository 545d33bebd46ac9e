"""What the wiring adds to a call's data and to `deskpbx serve`: the CDR's recording link,
click-to-call and transfer flags, fork numbering across transfers, recording settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbx.b2bua import B2bua
from pbx.call import Call, CallState, Fork, Peer, Side, fork_invite, voice_codec
from pbx.cli import build_parser
from pbx.commands import UsageError
from pbx.commands.serve import config_from_args
from pbx.config import PbxConfig
from pbx.recording import RecordingSettings
from pbx.server import recover_cdrs
from pbx.sip.dialog import Dialog
from pbx.sip.events import RequestReceived, ResponseReceived
from pbx.sip.message import Request, Response
from pbx.sip.sdp import SessionDescription
from pbx.sip.transaction import ClientKey, ServerKey
from pbx.store import Binding, Cdr, Disposition, Store
from tests.unit.test_call import OFFER, PortsRelay, make_call


def test_the_cdr_links_the_recording() -> None:
    call = make_call(recording="/data/recordings/2026/11/27/call-1.wav")
    call.end, call.disposition = 1010.0, Disposition.ANSWERED
    assert call.to_cdr().recording == "/data/recordings/2026/11/27/call-1.wav"
    plain = make_call()
    plain.end, plain.disposition = 1010.0, Disposition.ANSWERED
    assert plain.to_cdr().recording is None


def test_only_a_phone_placed_call_waits_for_our_answer() -> None:
    assert make_call().a_waits is True
    assert make_call(originated=True).a_waits is False
    assert make_call(rerouting=True).a_waits is False


def test_fork_call_ids_keep_counting_across_transfers() -> None:
    call = make_call()
    peer = call.a_peer
    first = fork_invite(call, "sip:1002@127.0.0.1:5080", peer, b"", "DeskPBX")
    call.forks_sent = 3  # two forks rang, then a transfer placed a third
    later = fork_invite(call, "sip:1003@127.0.0.1:5090", peer, b"", "DeskPBX")
    assert (first.call_id, later.call_id) == ("label-0@deskpbx", "label-3@deskpbx")


def test_click_to_call_legs_b_show_the_extension_not_our_caller_id() -> None:
    call = make_call(originated=True)
    call.a_invite.headers.set("From", '"CRM" <sip:1002@127.0.0.1>;tag=a')
    invite = fork_invite(call, "sip:1002@127.0.0.1:5080", call.a_peer, b"", "DeskPBX")
    assert invite.headers.get("From") == "<sip:1001@127.0.0.1:5060>;tag=tag-a"


def _serve(*args: str):  # type: ignore[no-untyped-def]
    parsed = build_parser().parse_args(["--data-dir", "/tmp/x", "serve", *args])
    return config_from_args(parsed)


def test_serve_passes_recording_settings_to_the_recording_manager() -> None:
    config = _serve("--recording-retention-days", "30", "--recording-max-bytes", "1000000",
                    "--recording-feature-code", "*9")  # fmt: skip
    assert RecordingSettings.from_extra(config.extra) == RecordingSettings(30.0, 1_000_000, "*9")
    assert config.data_dir == Path("/tmp/x")
    default = RecordingSettings.from_extra(_serve().extra)
    assert default == RecordingSettings(None, None, "*1")


def test_serve_register_lane_is_on_unless_turned_off() -> None:
    assert _serve().register_lane is True
    assert _serve("--register-lane", "off").register_lane is False
    with pytest.raises(SystemExit):  # argparse: only on/off
        _serve("--register-lane", "maybe")


def test_serve_media_timeout_is_a_minute_unless_set_and_zero_turns_it_off() -> None:
    assert _serve().media_timeout == 60.0
    assert _serve("--media-timeout", "30").media_timeout == 30.0
    assert _serve("--media-timeout", "0").media_timeout == 0.0
    for bad in ("-1", "inf"):
        with pytest.raises(UsageError):
            _serve("--media-timeout", bad)


def test_serve_dialog_ping_is_off_unless_set() -> None:
    assert _serve().dialog_ping == 0.0
    assert _serve("--dialog-ping", "60").dialog_ping == 60.0
    for bad in ("-1", "inf"):
        with pytest.raises(UsageError, match="--dialog-ping"):
            _serve("--dialog-ping", bad)


def test_serve_session_min_se_is_the_rfcs_90_s_and_never_below() -> None:
    assert _serve().session_min_se == 90
    assert _serve("--session-min-se", "1800").session_min_se == 1800
    with pytest.raises(UsageError, match="at least 90"):
        _serve("--session-min-se", "89")


@pytest.mark.parametrize(
    "args",
    [
        ("--recording-retention-days", "0"),
        ("--recording-max-bytes", "-5"),
        ("--recording-feature-code", "*x"),
    ],
)
def test_serve_refuses_unusable_recording_settings(args: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        _serve(*args)


class WireEndpoint:
    """Records what the B2BUA sends: ACKs (stateless), requests (BYE), responses to leg A."""

    def __init__(self) -> None:
        self.acks: list[Request] = []
        self.requests: list[Request] = []
        self.responses: list[Response] = []

    def now(self) -> float:
        return 0.0

    def send_stateless(self, message: Request, hop: object) -> None:
        self.acks.append(message)

    def send_request(self, message: Request, hop: object) -> ClientKey:
        self.requests.append(message)
        return ClientKey(f"z9hG4bK-{len(self.requests)}", message.method)

    def send_response(self, tx: object, response: Response) -> None:
        self.responses.append(response)

    def cancel(self, tx: ClientKey, reason: str | None = None) -> bool:
        return False


def _answer(invite: Request) -> Response:
    return Response(200, headers=[
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={FORK_TX.branch}"),
        ("From", invite.headers.get("From") or ""),
        ("To", f"{invite.headers.get('To')};tag=callee-1"),
        ("Call-ID", invite.call_id),
        ("CSeq", "1 INVITE"),
        ("Contact", "<sip:1002@127.0.0.1:5080>"),
    ])  # fmt: skip


FORK_TX = ClientKey("z9hG4bK-fork", "INVITE")


def test_a_retransmitted_2xx_is_acked_again_and_never_ends_the_call() -> None:
    """RFC 6026 7.2 passes 2xx retransmissions up on the same transaction: the B2BUA must
    ACK them (RFC 3261 13.2.2.4), not take them for a second phone answering late."""

    async def scenario() -> tuple[WireEndpoint, Call]:
        endpoint = WireEndpoint()
        b2bua = B2bua(endpoint, None, None, None, None,  # type: ignore[arg-type]
                      PbxConfig(data_dir=Path("/nonexistent")))  # fmt: skip
        call = make_call()
        b2bua.calls[call.label] = call
        peer = Peer(("127.0.0.1", 5080), "UDP", call.a_peer.local, "127.0.0.1")
        invite = fork_invite(call, "sip:1002@127.0.0.1:5080", peer, b"", "DeskPBX")
        binding = Binding("1002", "sip:1002@127.0.0.1:5080", "127.0.0.1", 5080, "UDP", 0.0)
        call.forks[FORK_TX] = Fork(binding, invite, FORK_TX, peer)
        b2bua._by_fork[FORK_TX] = call
        for _ in range(3):
            b2bua.on_response(ResponseReceived(_answer(invite), FORK_TX, ("127.0.0.1", 5080),
                                               "UDP"))  # fmt: skip
        b2bua._cancel_timers(call)
        return endpoint, call

    endpoint, call = asyncio.run(scenario())
    assert [ack.method for ack in endpoint.acks] == ["ACK", "ACK", "ACK"]
    assert endpoint.requests == []  # no BYE
    assert [r.status for r in endpoint.responses] == [200]  # leg A answered once
    assert call.state is CallState.CONNECTED and not call.ended


def test_a_crash_cut_call_gets_its_cdr_from_the_repaired_recording(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        rows = []
        for n, (caller, callee) in enumerate([("1001", "1002"), ("1003", "1004"), ("", "")]):
            row = store.add_recording(f"c{n}@x", f"/r/c{n}.wav", 1_800_000_000.0 + n,
                                      call_label=f"l{n}", caller=caller, callee=callee)  # fmt: skip
            rows.append(store.finish_recording(row.id, duration=12.5, size=100, sha256="ab",
                                               repaired=True))  # fmt: skip
        done = Cdr.from_times(call_id="c1@x", caller="1003", callee="1004", start=1_799_999_990.0,
                              answer=1_800_000_001.0, end=1_800_000_013.5,
                              disposition=Disposition.ANSWERED)  # fmt: skip
        store.add_cdr(done)  # the second call's CDR was written before the crash
        written = recover_cdrs(store, rows)
        assert [(c.call_id, c.caller, c.callee, c.recording) for c in written] == [
            ("c0@x", "1001", "1002", "/r/c0.wav")
        ]  # fmt: skip
        [cdr] = store.query_cdrs(caller="1001")
        assert (cdr.answer, cdr.billsec, cdr.sip_code) == (1_800_000_000.0, 12.5, 200)
        assert cdr.disposition is Disposition.ANSWERED and cdr.hangup_side.value == "system"
        assert recover_cdrs(store, rows) == []  # a second start writes nothing more


def test_a_re_invite_from_the_caller_is_what_a_transfer_offers_next() -> None:
    """Hold (a=sendonly, RFC 3264 8.4) from leg A is passed to leg B and kept as leg A's
    offer, so a later blind transfer rings the new callee with the call still on hold."""

    async def scenario() -> tuple[WireEndpoint, Call]:
        endpoint = WireEndpoint()
        b2bua = B2bua(endpoint, None, None, None, None,  # type: ignore[arg-type]
                      PbxConfig(data_dir=Path("/nonexistent")))  # fmt: skip
        call = make_call()
        call.relay = PortsRelay()  # type: ignore[assignment]
        ok = call.a_invite.make_response(200, to_tag=call.a_tag)
        ok.headers.add("Contact", "<sip:pbx@127.0.0.1:5060>")
        call.a_dialog = Dialog.uas(call.a_invite, ok, call.a_peer.local)
        peer = Peer(("127.0.0.1", 5080), "UDP", call.a_peer.local, "127.0.0.1")
        invite = fork_invite(call, "sip:1002@127.0.0.1:5080", peer, b"", "DeskPBX")
        call.b_dialog, call.b_peer = Dialog.uac(invite, _answer(invite), peer.local), peer
        call.answer = 1001.0
        b2bua.calls[call.label] = call
        b2bua._by_dialog[call.a_dialog.id] = (call, Side.A)
        hold = Request("INVITE", "sip:pbx@127.0.0.1:5060", [
            ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-hold"),
            ("From", "<sip:1001@127.0.0.1>;tag=a"),
            ("To", f"<sip:1002@127.0.0.1>;tag={call.a_tag}"),
            ("Call-ID", "call-1@test"),
            ("CSeq", "2 INVITE"),
            ("Content-Type", "application/sdp"),
        ], OFFER + b"a=sendonly\r\n")  # fmt: skip
        tx = ServerKey("z9hG4bK-hold", ("127.0.0.1", 5070), "INVITE")
        b2bua.on_request(RequestReceived(hold, tx, ("127.0.0.1", 5070), "UDP"))
        return endpoint, call

    endpoint, call = asyncio.run(scenario())
    [forwarded] = endpoint.requests
    assert forwarded.method == "INVITE" and b"a=sendonly" in forwarded.body
    assert b"m=audio 40002 " in forwarded.body  # leg B sees the relay, not the phone
    assert call.a_offer.direction_for(call.a_offer.media[0]).value == "sendonly"


def test_call_quality_is_measured_unless_turned_off() -> None:
    def b2bua(**extra: str) -> B2bua:
        config = PbxConfig(data_dir=Path("/nonexistent"), extra=extra)
        return B2bua(WireEndpoint(), None, None, None, None, config)  # type: ignore[arg-type]

    assert b2bua().quality is True
    assert b2bua(call_quality="OFF").quality is False
    assert b2bua(call_quality="on").quality is True


class TranscodingRelay(PortsRelay):
    def __init__(self) -> None:
        super().__init__()
        self.transcoders: list[tuple[object, object]] = []

    def set_transcoders(self, a_to_b: object, b_to_a: object) -> None:
        self.transcoders.append((a_to_b, b_to_a))


def _answer_sdp(pt: int, name: str, events: int | None = None) -> SessionDescription:
    types = f"{pt}" + (f" {events}" if events is not None else "")
    text = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio 4000 RTP/AVP {types}\r\na=rtpmap:{pt} {name}/8000\r\n")  # fmt: skip
    if events is not None:
        text += f"a=rtpmap:{events} telephone-event/8000\r\n"
    return SessionDescription.parse(text)


def test_the_voice_codec_is_the_first_one_that_is_not_an_event_or_comfort_noise() -> None:
    codec, events = voice_codec(_answer_sdp(8, "PCMA", events=101))
    assert (codec.name if codec else None, events) == ("PCMA", 101)
    text = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n"
    assert voice_codec(SessionDescription.parse(text)) == (None, None)  # refused stream


def test_a_transfer_to_a_phone_on_the_other_g711_law_is_transcoded() -> None:
    b2bua = B2bua(WireEndpoint(), None, None, None, None,  # type: ignore[arg-type]
                  PbxConfig(data_dir=Path("/nonexistent")))  # fmt: skip
    call = make_call()  # the caller offered PCMA
    relay = call.relay = TranscodingRelay()  # type: ignore[assignment]
    first = _answer_sdp(8, "PCMA", events=101)  # the first callee
    b2bua.control.bridge_codecs(call, first)  # the caller gets this very answer...
    call.answer_towards(Side.A, first, call.a_offer, "127.0.0.1")  # ...which settles leg A
    assert (call.a_codec.name if call.a_codec else None, call.a_events) == ("PCMA", 101)
    assert all(pair == (None, None) for pair in relay.transcoders)  # one law: nothing to do
    call.rerouting = True  # transferred: the new callee answers mu-law, events as 96
    b2bua.control.bridge_codecs(call, _answer_sdp(0, "PCMU", events=96))
    a_to_b, b_to_a = relay.transcoders[-1]
    packet = bytes([0x80, 0]) + bytes(10) + bytes([0xFF] * 4)  # mu-law silence from leg B
    assert b_to_a(packet)[1] == 8 and b_to_a(bytes([0x80, 96]) + bytes(14))[1] == 101
    assert b_to_a(packet)[12:] == bytes([0xD5] * 4)  # mu-law 0xFF is A-law 0xD5 (G.711)
    assert a_to_b(bytes([0x80, 8]) + bytes(14))[1] == 0
