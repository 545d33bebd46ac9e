"""The B2BUA keeps one Peer per flow: same destination and transport, same face."""

from __future__ import annotations

from pathlib import Path

import pbx.b2bua as b2bua_module
from pbx.b2bua import B2bua
from pbx.config import PbxConfig
from pbx.net.local_address import LocalAddresses


class CountingFaces(LocalAddresses):
    def __init__(self) -> None:
        super().__init__({"UDP": [("127.0.0.1", 5060)], "TCP": [("127.0.0.1", 5060)]})
        self.asked = 0

    def face(self, destination, transport):  # type: ignore[no-untyped-def]
        self.asked += 1
        return super().face(destination, transport)


def make_b2bua(faces: LocalAddresses) -> B2bua:
    return B2bua(None, None, None, None, faces,  # type: ignore[arg-type]
                 PbxConfig(data_dir=Path("/nonexistent")))  # fmt: skip


def test_a_flow_gets_the_same_peer_and_the_face_is_picked_once() -> None:
    faces = CountingFaces()
    b2bua = make_b2bua(faces)
    first = b2bua._peer(("127.0.0.1", 5071), "udp")
    again = b2bua._peer(("127.0.0.1", 5071), "udp")
    assert again is first and faces.asked == 1
    assert (first.destination, first.transport, first.media_host) == (
        ("127.0.0.1", 5071), "UDP", "127.0.0.1",
    )  # fmt: skip
    assert first.local.contact == "<sip:pbx@127.0.0.1:5060>"


def test_other_flows_get_their_own_peer() -> None:
    b2bua = make_b2bua(CountingFaces())
    udp = b2bua._peer(("127.0.0.1", 5071), "UDP")
    tcp = b2bua._peer(("127.0.0.1", 5071), "TCP")
    other_port = b2bua._peer(("127.0.0.1", 5072), "UDP")
    assert tcp.transport == "TCP" and tcp.local.contact == "<sip:pbx@127.0.0.1:5060;transport=tcp>"
    assert len({id(udp), id(tcp), id(other_port)}) == 3
    assert other_port.destination == ("127.0.0.1", 5072)


def test_the_peer_table_is_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(b2bua_module, "PEER_CACHE_SIZE", 3)
    b2bua = make_b2bua(CountingFaces())
    for port in range(5000, 5010):
        b2bua._peer(("127.0.0.1", port), "UDP")
    assert 1 <= len(b2bua._peers) <= 3
