"""The softphone's account server given by name finds its server through DNS SRV (RFC 3263),
as Zoiper and Linphone do: `pbx.test` publishes `_sip._udp.pbx.test` pointing at the
running DeskPBX's port, served by a real dnsmasq on 127.0.0.1."""

from __future__ import annotations

import pytest

from pbx.net.dns import Locator
from pbx.sip.timers import TimerConfig
from pbx.ua import Account, RegistrationState, UserAgent
from tests.integration.pbx_harness import PASSWORDS, start_pbx
from tests.integration.peers.dnsmasq import DNSMASQ, Dnsmasq
from tests.integration.ports import free_port
from tests.integration.test_ua_support import ua_rtp_block

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(DNSMASQ is None, reason="dnsmasq not installed (Debian dnsmasq-base)"),
]


async def test_a_server_by_name_registers_where_its_srv_records_point(tmp_path) -> None:
    pbx = start_pbx(tmp_path / "pbx")
    dead = free_port()  # priority 10: nothing answers there
    dns = Dnsmasq(tmp_path, [("_sip._udp.pbx.test", "dead.pbx.test", dead, 10, 0),
                             ("_sip._udp.pbx.test", "sip.pbx.test", pbx.port, 20, 0)],
                  [("dead.pbx.test", "127.0.0.1"), ("sip.pbx.test", "127.0.0.1")])  # fmt: skip
    account = Account("1001", PASSWORDS["1001"], "pbx.test", 5060, "UDP")
    timers = TimerConfig(t1=0.05)  # the silent server times out in 64*T1 = 3.2 s
    try:
        ua = UserAgent(account, ("127.0.0.1", 0), None, ua_rtp_block(), timers=timers,
                       locator=Locator([dns.server]))  # fmt: skip
        await ua.start()
        try:
            assert ua.server_hop.address == ("127.0.0.1", dead)  # priority 10 first
            first = await ua.register(expires=120)
            assert first.state is RegistrationState.FAILED and first.status is None
            second = await ua.register(expires=120)  # the silent server went to the back
            assert (second.state, second.status) == (RegistrationState.REGISTERED, 200)
            assert ua.server_hop.address == ("127.0.0.1", pbx.port)
            bindings = pbx.run(
                lambda: [b.contact for b in pbx.pbx.store.active_bindings(pbx.pbx.wall(), "1001")]
            )
            assert bindings == [ua.contact_uri]
            await ua.unregister()
        finally:
            await ua.aclose()
    finally:
        dns.stop()
        pbx.stop()
