"""What a latch costs the relay's loop (pbx.media.relay RelaySession._latch / _rewire).

When hundreds of calls start at once their first datagrams latch within one or two
loop rounds, so a latch does only the work that changes: it rewires its own port and
the other leg's port of the same kind (RTP or RTCP), each with one send-call lookup.
Same harness as test_relay.py (stdlib loop and uvloop).
"""

from __future__ import annotations

from typing import Any

import pytest

from pbx.media import relay as relay_module
from pbx.media.relay import Leg
from tests.integration.test_relay import make_relay, phone, rtp, run

pytestmark = pytest.mark.integration
__all__ = ["run"]  # the loop fixture, parametrised over asyncio and uvloop


def test_a_latch_rewires_only_the_two_ports_of_its_kind(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        relay = make_relay()
        session = await relay.open_session("latch")
        a, b = await phone(), await phone()
        session.set_remote(Leg.A, "127.0.0.1", a.port)
        session.set_remote(Leg.B, "127.0.0.1", b.port)
        la, lb = session.local(Leg.A), session.local(Leg.B)
        wired: list[tuple[Leg, bool]] = []
        real_wire = relay_module._wire

        def counting_wire(port: Any, *args: Any) -> None:
            wired.append((port.leg, port.rtcp))
            real_wire(port, *args)

        monkeypatch.setattr(relay_module, "_wire", counting_wire)
        a.send(rtp(1), "127.0.0.1", la.rtp)  # A's RTP latches
        assert await b.recv() == (rtp(1), ("127.0.0.1", lb.rtp))
        assert sorted(wired, key=lambda w: w[0].value) == [(Leg.A, False), (Leg.B, False)]
        wired.clear()
        b.send(rtp(2), "127.0.0.1", lb.rtp)  # B's RTP latches; B's RTP now goes to A's latch
        assert await a.recv() == (rtp(2), ("127.0.0.1", la.rtp))
        assert sorted(wired, key=lambda w: w[0].value) == [(Leg.A, False), (Leg.B, False)]
        assert session._legs[Leg.A].rtp.target == ("127.0.0.1", b.port)
        assert session._legs[Leg.B].rtp.target == ("127.0.0.1", a.port)
        assert session._legs[Leg.A].rtcp.latched is None  # RTCP untouched by RTP latches
        await relay.aclose()

    run(body)
