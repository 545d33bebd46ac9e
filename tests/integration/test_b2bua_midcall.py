"""Requests and media inside an answered call, and phones behind NAT.

Hold and resume by re-INVITE (the SDP each side gets points at the relay and
carries the right direction), INFO DTMF passed to the other leg, a re-INVITE
that moves the caller's media to a new port, RFC 4733 telephone-events
relayed untouched, and a phone whose Contact and SDP name addresses that do
not reach it (it is reached where its REGISTER and its RTP really came from).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from pbx.media.relay import Leg
from pbx.store import Disposition
from tests.integration.pbx_harness import start_pbx
from tests.integration.ports import free_port
from tests.integration.test_b2bua_support import (
    MediaSocket,
    callee,
    caller,
    needs_sipp,
    register,
    relay_ports_regexp,
    wait_call,
)

pytestmark = [pytest.mark.integration, needs_sipp]

DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")
CALLEE_MEDIA = "m=audio [media_port]"  # the callee scenarios' SDP media line, to redirect


@pytest.fixture
def pbx(tmp_path):
    running = start_pbx(tmp_path / "pbx")
    yield running
    running.stop()


def test_hold_resume_and_info_dtmf(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1002", port).ok
    ports = relay_ports_regexp(pbx)
    # Each side's scenario checks the SDP it gets: relay address, relay port, direction
    # (sendonly -> recvonly on hold, sendrecv on resume); the callee checks the INFO body.
    held = callee(tmp_path, "uas_hold.xml", port, auto_answer=False, RELAY_PORTS=ports)
    result = caller(pbx, tmp_path, "uac_hold.xml", "1001", "1002", RELAY_PORTS=ports).wait()
    assert result.ok, result.log
    callee_result = held.wait()
    assert callee_result.ok, callee_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.ANSWERED, 200)


def test_callee_puts_the_caller_on_hold(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1003", port).ok
    ports = relay_ports_regexp(pbx)
    # The re-INVITE now goes from leg B to leg A; each side checks the SDP it gets.
    holding = callee(tmp_path, "uas_hold_caller.xml", port, RELAY_PORTS=ports)
    result = caller(pbx, tmp_path, "uac_held.xml", "1001", "1003", RELAY_PORTS=ports).wait()
    assert result.ok, result.log
    callee_result = holding.wait()
    assert callee_result.ok, callee_result.log
    [cdr] = pbx.wait_cdrs(1)
    assert cdr.disposition is Disposition.ANSWERED and cdr.hangup_side.value == "caller"
    assert pbx.run(pbx.pbx.b2bua.table_sizes)["forwarded"] == 0


def test_reinvite_with_a_new_media_port_moves_the_relay(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1002", port).ok
    moved = MediaSocket()
    try:
        answering = callee(tmp_path, "uas_reinvite.xml", port)
        calling = caller(pbx, tmp_path, "uac_move.xml", "1001", "1002", pause_ms=4000,
                         NEW_MEDIA_PORT=str(moved.port))  # fmt: skip
        call = wait_call(pbx, lambda c: c.answered)
        relay_a = pbx.run(lambda: call.relay.local(Leg.A).rtp)
        # The callee keeps playing; after the re-INVITE its audio must arrive at the new port.
        received = moved.collect(2.0)
        from_relay = [data for data, source in received if source == ("127.0.0.1", relay_a)]
        assert len(from_relay) > 20
        assert all(data[1] & 0x7F == 8 for data in from_relay)  # PCMA, as the callee plays
        # RTP from the new port is taken (the relay latches there) and sent on to the callee.
        before = pbx.run(lambda: call.relay.stats(Leg.B).packets_out)
        moved.send(("127.0.0.1", relay_a), 30)
        pbx.wait_for(lambda: pbx.run(lambda: call.relay.stats(Leg.A).packets_in) >= 30, 3)
        stats = pbx.run(lambda: call.relay.stats(Leg.A))
        assert stats.latched[:2] == ("127.0.0.1", moved.port)
        assert pbx.run(lambda: call.relay.stats(Leg.B).packets_out) - before >= 30
        result = calling.wait()
        assert result.ok, result.log
        assert answering.wait().ok
    finally:
        moved.close()


def _pcap_rtp_payloads(path: Path) -> list[bytes]:
    """The RTP payloads (after the 12-byte header) of an Ethernet/IPv4/UDP pcap."""
    data = path.read_bytes()
    offset, payloads = 24, []
    while offset + 16 <= len(data):
        length = struct.unpack("<I", data[offset + 8 : offset + 12])[0]
        frame = data[offset + 16 : offset + 16 + length]
        offset += 16 + length
        ip = frame[14:]
        udp = ip[(ip[0] & 0x0F) * 4 :]
        payloads.append(udp[8 + 12 :])
    return payloads


@pytest.mark.skipif(not DTMF_PCAP.exists(), reason=f"{DTMF_PCAP} missing (sip-tester package)")
def test_rfc4733_telephone_events_pass_through_the_relay(pbx, tmp_path):
    port = free_port()
    assert register(pbx, tmp_path, "1002", port).ok
    expected = _pcap_rtp_payloads(DTMF_PCAP)
    assert len(expected) == 10 and expected[0][0] == 1  # ten packets of the event "1"
    phone_media = MediaSocket()
    try:
        answering = callee(tmp_path, "uas_answer_quiet.xml", port,
                           **{CALLEE_MEDIA: f"m=audio {phone_media.port}"})  # fmt: skip
        calling = caller(pbx, tmp_path, "uac_call.xml", "1001", "1002", pause_ms=1500,
                         **{"g711a.pcap": DTMF_PCAP.name})  # fmt: skip
        call = wait_call(pbx, lambda c: c.answered)
        relay_b = pbx.run(lambda: call.relay.local(Leg.B).rtp)
        received = phone_media.collect(1.2)
        result = calling.wait()
        assert result.ok, result.log
        assert answering.wait().ok
    finally:
        phone_media.close()
    events = [data for data, source in received if source == ("127.0.0.1", relay_b)]
    assert [data[1] & 0x7F for data in events] == [101] * 10
    assert [data[12:] for data in events] == expected  # payloads untouched by the relay


def test_phone_behind_nat_is_reached_where_it_registered_and_sends_rtp_from(pbx, tmp_path):
    port = free_port()
    # The Contact names a private address that does not exist here.
    assert register(pbx, tmp_path, "1002", port, contact="10.255.255.1:5060").ok
    [binding] = pbx.run(lambda: pbx.pbx.store.active_bindings(pbx.pbx.wall(), "1002"))
    assert binding.contact == "sip:1002@10.255.255.1:5060"
    assert (binding.source_host, binding.source_port) == ("127.0.0.1", port)
    phone_media = MediaSocket()
    sdp_port = free_port()  # what the phone's SDP says; nothing listens there
    try:
        answering = callee(tmp_path, "uas_answer_quiet.xml", port,
                           **{CALLEE_MEDIA: f"m=audio {sdp_port}"})  # fmt: skip
        calling = caller(pbx, tmp_path, "uac_call.xml", "1001", "1002", pause_ms=3000)
        call = wait_call(pbx, lambda c: c.answered)
        relay_b = pbx.run(lambda: call.relay.local(Leg.B).rtp)
        # The phone's RTP really comes from another port than its SDP names.
        phone_media.send(("127.0.0.1", relay_b), 25)
        received = phone_media.collect(1.0)
        result = calling.wait()
        assert result.ok, result.log
        callee_result = answering.wait()
        assert callee_result.ok, callee_result.log  # the INVITE reached 127.0.0.1:port
    finally:
        phone_media.close()
    from_relay = [data for data, source in received if source == ("127.0.0.1", relay_b)]
    assert len(from_relay) > 20  # the caller's audio follows the latch to the real port
    [cdr] = pbx.wait_cdrs(1)
    assert cdr.media_stats is not None
    assert cdr.media_stats["callee"]["latched"] == ["127.0.0.1", phone_media.port]
    assert cdr.media_stats["callee"]["packets_in"] == 25


def test_no_answer_timer_does_not_end_an_answered_call(tmp_path):
    pbx = start_pbx(tmp_path / "pbx", no_answer_timeout=1.0)
    try:
        port = free_port()
        assert register(pbx, tmp_path, "1003", port).ok
        answering = callee(tmp_path, "uas_answer.xml", port)
        result = caller(pbx, tmp_path, "uac_call.xml", "1001", "1003", pause_ms=2000).wait()
        assert result.ok, result.log
        assert answering.wait().ok
        [cdr] = pbx.wait_cdrs(1)
        assert cdr.disposition is Disposition.ANSWERED and cdr.billsec > 1.5
    finally:
        pbx.stop()
