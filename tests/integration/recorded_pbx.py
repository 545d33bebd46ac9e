"""A real PBX (UDP on 127.0.0.1:0) whose listener's transport records what it sends instead of
sending it: datagrams go in through `UdpListener.datagram_received`, the answers are read back
at once, with no timing involved. Shared by the REGISTER lane's differential test and the
CANCEL and handler-failure tests. No tests here."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from pbx.config import PbxConfig
from pbx.net.transport import Listen
from pbx.registrar import Registered
from pbx.registrar_lane import RegisterLane
from pbx.server import Pbx
from pbx.store import Binding, Store

WALL = 1_800_000_000.0
SOURCE = ("127.0.0.1", 6000)
USER, PASSWORD = "1001", "secret-1001"
NONCE = re.compile(r'nonce="([^"]+)"')


class Recorder:
    """Stands in for the UDP socket's transport: keeps every datagram sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, object]] = []

    def sendto(self, data: bytes, addr: object = None) -> None:
        self.sent.append((data, addr))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


@dataclass
class WiredPbx:
    pbx: Pbx
    wire: Recorder
    changes: list[Registered] = field(default_factory=list)
    nonce: str = ""

    @property
    def realm(self) -> str:
        assert self.pbx.store is not None
        return self.pbx.store.realm

    @property
    def lane(self) -> RegisterLane | None:
        assert self.pbx.endpoint is not None
        handle = self.pbx.endpoint.udp_lane
        return None if handle is None else handle.__self__  # type: ignore[attr-defined]

    def feed(self, data: bytes) -> list[bytes]:
        """Everything the PBX sent in answer to one datagram."""
        assert self.pbx.endpoint is not None
        before = len(self.wire.sent)
        self.pbx.endpoint.transports._udp[0].datagram_received(data, SOURCE)
        answers = [sent for sent, _ in self.wire.sent[before:]]
        for answer in answers:
            found = NONCE.search(answer.decode())
            if found and answer.startswith(b"SIP/2.0 401"):
                self.nonce = found.group(1)
        return answers

    def answer(self, data: bytes) -> bytes:
        """The one answer to one datagram."""
        [answer] = self.feed(data)
        return answer

    def answer_and_address(self, data: bytes) -> tuple[bytes, object]:
        """The one answer to one datagram and where it was sent."""
        before = len(self.wire.sent)
        answer = self.answer(data)
        assert len(self.wire.sent) == before + 1
        return answer, self.wire.sent[-1][1]

    def bindings(self) -> list[Binding]:
        assert self.pbx.store is not None
        return self.pbx.store.active_bindings(WALL, USER)

    def authorization(self, nc: int = 1) -> str:
        uri, cnonce, count = "sip:pbx.example", "0a4f113b", f"{nc:08x}"
        ha1 = hashlib.md5(f"{USER}:{self.realm}:{PASSWORD}".encode()).hexdigest()
        ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
        digest = hashlib.md5(f"{ha1}:{self.nonce}:{count}:{cnonce}:auth:{ha2}".encode())
        return (
            f'Authorization: Digest username="{USER}", realm="{self.realm}", '
            f'nonce="{self.nonce}", uri="{uri}", response="{digest.hexdigest()}", '
            f'algorithm=MD5, cnonce="{cnonce}", qop=auth, nc={count}'
        )

    def registered(self, branch: str) -> bytes:
        """Challenge (branch + "c"), then register with credentials on `branch`: its 200."""
        challenged = self.answer(request("REGISTER", branch + "c", 1))
        assert challenged.startswith(b"SIP/2.0 401 ")
        answer = self.answer(request("REGISTER", branch, 2, extra=(self.authorization(),)))
        assert answer.startswith(b"SIP/2.0 200 OK\r\n")
        return answer


async def start(
    tmp: Path,
    *,
    lane: bool,
    rtp_ports: tuple[int, int] = (41100, 41199),
    more_extensions: tuple[tuple[str, str, str], ...] = (),
) -> WiredPbx:
    """A PBX with extension 1001 (and `more_extensions`: number, password, name) whose UDP
    listener records what it sends; `lane` turns the REGISTER lane on or off."""
    tmp.mkdir()
    with Store.in_dir(tmp) as store:
        store.add_extension(USER, PASSWORD, "Alice")
        for number, password, name in more_extensions:
            store.add_extension(number, password, name)
    config = PbxConfig(
        data_dir=tmp, listen=(Listen("127.0.0.1", 0, ("UDP",)),), rtp_ports=rtp_ports,
        auth_algorithms=("MD5",), qualify_interval=0, http=None, register_lane=lane,
    )  # fmt: skip
    pbx = Pbx(config, wall=lambda: WALL)
    await pbx.start()
    assert pbx.endpoint is not None
    wire = Recorder()
    pbx.endpoint.transports._udp[0]._transport = wire  # type: ignore[assignment]
    wired = WiredPbx(pbx, wire)
    pbx.registrar.on_change = wired.changes.append
    assert (wired.lane is not None) is lane
    return wired


async def stop(wired: WiredPbx) -> None:
    assert wired.pbx.endpoint is not None
    wired.pbx.endpoint.transports._udp[0]._transport = None
    await wired.pbx.aclose()


def request(
    method: str,
    branch: str,
    cseq: int = 1,
    *,
    cseq_method: str | None = None,
    extra: tuple[str, ...] = (),
    to_tag: str = "",
) -> bytes:
    """A request as a phone behind NAT sends it (UDP, rport), from extension 1001."""
    lines = [
        f"{method} sip:pbx.example SIP/2.0",
        f"Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK{branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{USER}@pbx.example>;tag=ft-{branch}",
        f"To: <sip:{USER}@pbx.example>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: call-{branch}@phone",
        f"CSeq: {cseq} {cseq_method or method}",
        *(["Contact: <sip:1001@192.168.1.10:5060>", "Expires: 3600"]
          if method == "REGISTER" else []),
        *extra,
        "Content-Length: 0",
    ]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def cancel_of(original: bytes, cseq: int) -> bytes:
    """The CANCEL for `original` (RFC 3261 9.1): same Request-URI, Call-ID, From, To, top
    Via (branch) and CSeq number, method CANCEL."""
    head = original.split(b"\r\n\r\n", 1)[0].decode()
    lines = head.split("\r\n")
    method = lines[0].split(" ", 1)[0]
    lines[0] = "CANCEL" + lines[0][len(method) :]
    kept = ("Via:", "Max-Forwards:", "From:", "To:", "Call-ID:")
    body = [line for line in lines[1:] if line.startswith(kept)]
    body += [f"CSeq: {cseq} CANCEL", "Content-Length: 0"]
    return ("\r\n".join([lines[0], *body]) + "\r\n\r\n").encode()


def status_line(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode()


def header(answer: bytes, name: str) -> str:
    for line in answer.decode().split("\r\n"):
        if line.startswith(f"{name}: "):
            return line[len(name) + 2 :]
    raise AssertionError(f"no {name} in {answer!r}")
