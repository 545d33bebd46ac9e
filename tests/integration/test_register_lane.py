"""The REGISTER lane answers exactly as the full path does (differential test).

Two real PBXs (UDP bound on 127.0.0.1:0, nothing is sent on the wire: each listener's
transport is swapped for one that records what the PBX sends), one with the lane and one
without, get the same REGISTERs through `UdpListener.datagram_received`; their answers
must be equal once the random values (To tag, nonce, rspauth) are normalised. The lane's
counters prove which requests it took.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.recorded_pbx import NONCE, PASSWORD, USER, WALL, WiredPbx, start, stop

# The datagrams come from recorded_pbx.SOURCE; the Via names a private address (a phone
# behind NAT).
_RANDOM = re.compile(r'((?:next)?nonce|rspauth|cnonce)="[^"]*"|;tag=[0-9a-f]+\b(?=\r\n)')


Side = WiredPbx


async def _side(tmp: Path, lane: bool) -> Side:
    return await start(tmp, lane=lane, rtp_ports=(41000, 41099) if lane else (41200, 41299),
                       more_extensions=(("1002", "other-secret", "Bob"),))  # fmt: skip


@pytest.fixture
async def sides(tmp_path: Path) -> AsyncIterator[tuple[Side, Side]]:
    lane = await _side(tmp_path / "lane", True)
    full = await _side(tmp_path / "full", False)
    try:
        assert lane.lane is not None and full.lane is None
        yield lane, full
    finally:
        for side in (lane, full):
            await stop(side)


def register(
    branch: str,
    cseq: int = 1,
    *,
    user: str = USER,
    call_id: str = "reg-1@phone",
    contacts: tuple[str, ...] = ("<sip:1001@192.168.1.10:5060>",),
    expires: str | None = "3600",
    extra: tuple[str, ...] = (),
    via: str | None = None,
    body: str = "",
) -> str:
    """A REGISTER as a phone behind NAT sends it; `{auth}` marks where credentials go."""
    via = via or f"SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK{branch};rport"
    lines = [
        "REGISTER sip:pbx.example SIP/2.0",
        f"Via: {via}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@pbx.example>;tag=ft{branch}",
        f"To: <sip:{user}@pbx.example>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *(f"Contact: {c}" for c in contacts),
        "{auth}",
        *([f"Expires: {expires}"] if expires is not None else []),
        "User-Agent: TestPhone/1.0",
        *extra,
        f"Content-Length: {len(body)}",
    ]
    return "\r\n".join(lines) + "\r\n\r\n" + body


def authorization(
    side: Side, *, user: str = USER, password: str = PASSWORD, nc: int = 1, nonce: str = ""
) -> str:
    uri, cnonce, count = "sip:pbx.example", "0a4f113b", f"{nc:08x}"
    nonce = nonce or side.nonce
    ha1 = hashlib.md5(f"{user}:{side.realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
    digest = hashlib.md5(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (
        f'Authorization: Digest username="{user}", realm="{side.realm}", nonce="{nonce}", '
        f'uri="{uri}", response="{digest}", algorithm=MD5, cnonce="{cnonce}", qop=auth, nc={count}'
    )


def _normalised(data: bytes, side: Side) -> str:
    text = _RANDOM.sub(lambda m: f'{m.group(1)}="*"' if m.group(1) else ";tag=*", data.decode())
    return text.replace(side.realm, "REALM")


def exchange(
    sides: tuple[Side, Side], template: str, *, authorised: bool = True, **auth: object
) -> tuple[str, bool]:
    """Feed one REGISTER to both sides; the normalised answers must be equal. Returns the
    answer and whether the lane took the request."""
    lane, full = sides
    assert lane.lane is not None
    before = lane.lane.answered + lane.lane.resent
    answers = []
    for side in sides:
        auth_line = authorization(side, **auth) if authorised else ""  # type: ignore[arg-type]
        text = template.replace("{auth}\r\n", f"{auth_line}\r\n" if auth_line else "")
        data, addr = side.answer_and_address(text.encode())
        answers.append((_normalised(data, side), addr))
    assert answers[0] == answers[1]
    return answers[0][0], lane.lane.answered + lane.lane.resent > before


def challenge(sides: tuple[Side, Side], template: str) -> str:
    answer, taken = exchange(sides, template, authorised=False)
    assert answer.startswith("SIP/2.0 401 Unauthorized\r\n")
    assert taken
    return answer


async def test_challenge_then_register_refresh_and_deregister(sides: tuple[Side, Side]) -> None:
    answer = challenge(sides, register("a1"))
    assert sides[0].lane is not None and sides[0].lane.challenged == 1  # read without a parse
    assert "WWW-Authenticate: Digest" in answer and 'nonce="*"' in answer
    stamped = "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKa1;rport=6000;received=127.0.0.1"
    assert f"\r\nVia: {stamped}\r\n" in answer
    answer, taken = exchange(sides, register("a2", 2))
    assert taken and answer.startswith("SIP/2.0 200 OK\r\n")
    assert "Contact: <sip:1001@192.168.1.10:5060>;expires=3600\r\n" in answer
    assert "Date: " in answer and "Authentication-Info: " in answer
    answer, taken = exchange(sides, register("a3", 3, expires="1800"), nc=2)
    assert taken and "Contact: <sip:1001@192.168.1.10:5060>;expires=1800\r\n" in answer
    answer, taken = exchange(sides, register("a4", 4, expires="0"), nc=3)
    assert taken and answer.startswith("SIP/2.0 200 OK\r\n") and "Contact:" not in answer
    lane, full = sides
    assert [len(c.bindings) for c in lane.changes] == [len(c.bindings) for c in full.changes]
    assert [len(c.bindings) for c in lane.changes] == [1, 1, 0]
    stored = lane.pbx.store.active_bindings(WALL, USER)  # type: ignore[union-attr]
    assert stored == []


async def test_binding_keeps_the_source_address(sides: tuple[Side, Side]) -> None:
    challenge(sides, register("b1"))
    exchange(sides, register("b2", 2))
    for side in sides:
        (binding,) = side.pbx.store.active_bindings(WALL, USER)  # type: ignore[union-attr]
        assert (binding.source_host, binding.source_port, binding.transport) == (
            "127.0.0.1", 6000, "UDP",
        )  # fmt: skip
        assert binding.expires_at == WALL + 3600 and binding.user_agent == "TestPhone/1.0"


@pytest.mark.parametrize(
    ("contacts", "expires", "status", "shown"),
    [
        (("<sip:1001@10.0.0.1>;expires=120",), "3600", 200, ["<sip:1001@10.0.0.1>;expires=120"]),
        (("<sip:1001@10.0.0.1>",), None, 200, ["<sip:1001@10.0.0.1>;expires=3600"]),
        (("<sip:1001@10.0.0.1>",), "99999", 200, ["<sip:1001@10.0.0.1>;expires=3600"]),
        (("<sip:1001@10.0.0.1>",), "30", 423, []),
        (("<sip:1001@10.0.0.1>;expires=10",), "3600", 423, []),
        (("<sip:1001@10.0.0.1>", "<sip:1001@10.0.0.2>;q=0.5"), "600", 200,
         ["<sip:1001@10.0.0.1>;expires=600", "<sip:1001@10.0.0.2>;expires=600"]),
        (("<sip:1001@10.0.0.1>, <sip:1001@10.0.0.3>;expires=90",), "600", 200,
         ["<sip:1001@10.0.0.1>;expires=600", "<sip:1001@10.0.0.3>;expires=90"]),
        (("*",), "0", 200, []),
        (("*",), "60", 400, []),
        ((), "3600", 200, []),
    ],
)  # fmt: skip
async def test_expires_and_contact_variants(
    sides: tuple[Side, Side],
    contacts: tuple[str, ...],
    expires: str | None,
    status: int,
    shown: list[str],
) -> None:
    challenge(sides, register("c1", contacts=contacts, expires=expires))
    answer, taken = exchange(sides, register("c2", 2, contacts=contacts, expires=expires))
    assert taken
    assert answer.startswith(f"SIP/2.0 {status} ")
    assert [line[9:] for line in answer.split("\r\n") if line.startswith("Contact: ")] == shown
    if status == 423:
        assert "Min-Expires: 60\r\n" in answer


async def test_refusals_match(sides: tuple[Side, Side]) -> None:
    challenge(sides, register("d1"))
    answer, taken = exchange(sides, register("d2", 2), password="wrong")
    assert taken and answer.startswith("SIP/2.0 401 ") and "stale=true" not in answer
    challenge(sides, register("d3", 1, user="1999"))
    answer, taken = exchange(sides, register("d4", 2, user="1999"), user="1999")
    assert taken and answer.startswith("SIP/2.0 401 ")
    challenge(sides, register("d5", 1, user="1002"))
    answer, taken = exchange(sides, register("d6", 2), user="1002", password="other-secret")
    assert taken and answer.startswith("SIP/2.0 403 ")


async def test_stale_nonce_and_replayed_count(sides: tuple[Side, Side]) -> None:
    for side in sides:
        old = side.pbx.auth.challenge(side.pbx.endpoint.now() - 10_000)  # type: ignore[union-attr]
        side.nonce = NONCE.search(old[0]).group(1)  # type: ignore[union-attr]
    answer, taken = exchange(sides, register("e1", 1))
    assert taken and answer.startswith("SIP/2.0 401 ") and "stale=true" in answer.lower()
    challenge(sides, register("e2", 2))
    answer, _ = exchange(sides, register("e3", 3))
    assert answer.startswith("SIP/2.0 200 ")
    answer, taken = exchange(sides, register("e4", 4))  # nc=1 again: a replay
    assert taken and answer.startswith("SIP/2.0 401 ")


async def test_out_of_order_cseq(sides: tuple[Side, Side]) -> None:
    challenge(sides, register("f1", 10))
    answer, _ = exchange(sides, register("f2", 11))
    assert answer.startswith("SIP/2.0 200 ")
    answer, taken = exchange(sides, register("f3", 5), nc=2)
    assert taken and answer.startswith("SIP/2.0 500 Out-of-order REGISTER\r\n")


async def test_retransmission_gets_the_same_bytes_unprocessed(sides: tuple[Side, Side]) -> None:
    lane, full = sides
    challenge(sides, register("g1"))
    for side in sides:
        data = register("g2", 2).replace("{auth}", authorization(side)).encode()
        first, _ = side.answer_and_address(data)
        again, _ = side.answer_and_address(data)
        assert first.startswith(b"SIP/2.0 200 ") and again == first
        assert len(side.changes) == 1, "a retransmission is not processed again"
    assert lane.lane is not None and lane.lane.resent == 1 and lane.lane.answered == 2


@pytest.mark.parametrize(
    "template",
    [
        register("h1", extra=("Route: <sip:pbx.example;lr>",)),
        register("h1", extra=("Require: foo",)),
        register("h1", extra=("Proxy-Require: foo",)),
        register("h1", extra=("Content-Type: text/plain",), body="hello"),
        register("h1", via="SIP/2.0/UDP 192.168.1.10;branch=z9hG4bKh1, SIP/2.0/UDP 10.1.1.1"),
        register("h1", via="SIP/2.0/TCP 192.168.1.10;branch=z9hG4bKh1"),
        register("h1", via="SIP/2.0/UDP 192.168.1.10;branch=h1-2543"),
        register("h1").replace("REGISTER sip:", "REGISTER sips:"),
        register("h1").replace("CSeq: 1 REGISTER", "CSeq: 1 OPTIONS"),
        register("h1").replace("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69"),
        register("h1", extra=("Via: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bKh2",)),  # two lines
        register("h1").replace("Expires: 3600", "Expires: soon"),
        register("h1", contacts=("<sip:1001@10.0.0.1",)),
        register("h1").replace("From: <sip:", "From: <tel:"),
    ],
)
async def test_unusual_requests_take_the_full_path(sides: tuple[Side, Side], template: str) -> None:
    answer, taken = exchange(sides, template, authorised=False)
    assert not taken
    assert answer.startswith("SIP/2.0 ")


async def test_compact_forms_are_answered_alike(sides: tuple[Side, Side]) -> None:
    compact = (
        register("m1").replace("Call-ID:", "i:").replace("Contact:", "m:").replace("From:", "f:")
    )
    answer = challenge(sides, compact)
    assert "\r\nCall-ID: reg-1@phone\r\n" in answer or "\r\ni: reg-1@phone\r\n" in answer
    answer, taken = exchange(sides, compact.replace("branch=z9hG4bKm1", "branch=z9hG4bKm2")
                             .replace("CSeq: 1 ", "CSeq: 2 "))  # fmt: skip
    assert taken and "Contact: <sip:1001@192.168.1.10:5060>;expires=3600\r\n" in answer


async def test_request_of_a_live_full_path_transaction_stays_there(
    sides: tuple[Side, Side],
) -> None:
    lane, _ = sides
    data = register("k1", extra=("Supported: path",)).replace("{auth}\r\n", "").encode()
    routed = data.replace(b"Supported: path\r\n", b"Route: <sip:pbx.example;lr>\r\n")
    first, _ = lane.answer_and_address(routed)  # the full path makes a transaction for branch k1
    assert lane.lane is not None and lane.lane.answered == 0
    again, _ = lane.answer_and_address(data)  # same branch and sent-by: the transaction answers
    assert lane.lane.answered == 0 and again == first


def _variant(rng: random.Random, n: int, cseq: int) -> str:
    """A REGISTER with generated header-name case, spacing, contact parameters and extras."""
    contact = f"<sip:1001@10.9.{n}.{rng.randint(1, 254)}:{rng.choice([5060, 5062, 41234])}>"
    params = rng.sample(
        [";expires=" + str(rng.choice([0, 59, 60, 61, 300, 7200])), ";q=0.7",
         ';+sip.instance="<urn:uuid:00000000-0000-0000-0000-00000000000' + str(n % 10) + '>"'],
        rng.randint(0, 3),
    )  # fmt: skip
    extra = rng.sample(["Allow: INVITE, ACK, BYE", "Supported: path, gruu"], rng.randint(0, 2))
    text = register(
        f"v{n}-{cseq}", cseq, call_id=f"var-{n}@phone", contacts=(contact + "".join(params),),
        expires=rng.choice([None, "0", "120", "3600", "86400"]), extra=tuple(extra),
    )  # fmt: skip
    for name in ("Via", "From", "To", "Call-ID", "CSeq", "Contact", "Expires", "Max-Forwards"):
        spelled = rng.choice([name, name.lower(), name.upper()])
        text = text.replace(f"\r\n{name}: ", f"\r\n{spelled}:{rng.choice([' ', '  ', ''])}", 1)
    return text


async def test_generated_variants_are_answered_alike(sides: tuple[Side, Side]) -> None:
    rng = random.Random(3261)
    statuses = set()
    for n in range(24):
        challenge(sides, _variant(rng, n, 1))
        answer, taken = exchange(sides, _variant(rng, n, 2))
        assert taken
        statuses.add(answer[8:11])
    assert statuses >= {"200", "423"}
    lane = sides[0].lane
    assert lane is not None and 0 < lane.challenged <= 24  # both ways of reading a first one
