"""A fork's INVITE carries its own RFC 3261 branch (8.1.1.7), so the core sends it as built."""

from __future__ import annotations

from pbx.call import Peer, fork_invite
from pbx.sip.core import SipCore
from pbx.sip.dialog import LocalEndpoint
from pbx.sip.transaction import ClientKey, is_rfc3261_branch
from tests.unit.test_call import make_call

LOCAL = LocalEndpoint("<sip:pbx@127.0.0.1:5060>", "127.0.0.1:5060")
PEER = Peer(("127.0.0.1", 5080), "UDP", LOCAL, "127.0.0.1")


def test_each_fork_invite_has_a_fresh_branch_the_core_keeps() -> None:
    call = make_call()
    invites = [fork_invite(call, "sip:1002@10.0.0.9:5062", PEER, b"v=0\r\n", "t") for _ in "ab"]
    branches = [invite.via.branch for invite in invites]
    assert all(is_rfc3261_branch(b) for b in branches) and branches[0] != branches[1]
    assert invites[0].via.sent_by == ("127.0.0.1", 5060) and invites[0].via.transport == "UDP"
    core = SipCore(branch_factory=lambda: "z9hG4bKfromcore")
    built = bytes(invites[0])
    key = core.send_request(invites[0], PEER.destination, "UDP", 0.0)
    assert key == ClientKey(branches[0], "INVITE")
    [out] = core.pop_outgoing()
    assert out.data == built  # no Via rewrite on the way out
