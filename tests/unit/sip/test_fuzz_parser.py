"""Fuzzing the message layer: "parse or raise ParseError", never anything else.

Seeds are typical messages plus, when the folder is present, the RFC 4475 torture
messages; hypothesis mutates them (bit flips, deletions, insertions of SIP
punctuation, splices, truncation) and also builds messages from random header
lines. Each input goes through parse_message, validate, every typed accessor and
serialize; a message that parses must re-parse from its own bytes to the same bytes,
and the typed values must print in a form that parses back. 20,000 examples in all.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbx.sip.errors import ParseError
from pbx.sip.framing import StreamParser
from pbx.sip.headers import Via
from pbx.sip.message import parse_message
from pbx.sip.uri import params_of, parse_name_addr, parse_uri
from pbx.sip.validate import validate
from tests.conftest import rfc4475_path

SYNTHETIC = [
    b"INVITE sip:bob@biloxi.example.com;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b'Max-Forwards: 70\r\nTo: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>;expires=60;q=0.5, *\r\n"
    b"Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Route: <sip:p3.example.com;lr>\r\nExpires: 120\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 13\r\n\r\nv=0\r\ns=-\r\nt=0",
    b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP [::1]:5070;branch=z9hG4bKx;received=::1\r\n"
    b"To: <sip:b@h>;tag=t\r\nf: sip:a@h;tag=f\r\ni: c1\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n",
    b"REGISTER sips:pbx.example.com SIP/2.0\r\nv: SIP/2.0/TLS h;branch=z9hG4bK1\r\n"
    b"t: sip:%61@h\r\nf: sip:%61@h;tag=1\r\ni: r@h\r\nCSeq: 2 REGISTER\r\nm: *\r\n"
    b'Authorization: Digest username="a", realm="h", nonce="n,1", uri="sip:h"\r\n'
    b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\nl: 0\r\n\r\n",
    b"OPTIONS tel:+1-555-0100;phone-context=x SIP/2.0\nVia: SIP/2.0/UDP h\nTo: tel:+1\n"
    b"From: <urn:x:y>;tag=9\nCall-ID: o\nCSeq: 3 OPTIONS\n\n",
]


def _seeds() -> list[bytes]:
    folder = rfc4475_path()
    files = sorted(folder.glob("*.dat")) if folder is not None else []
    return SYNTHETIC + [path.read_bytes() for path in files]


SEEDS = _seeds()
PUNCTUATION = [b";", b",", b"\"", b"<", b">", b":", b" ", b"\r\n", b"\r\n ", b"%", b"=", b"@",
               b"\\", b"\x00", b"\xff", b"[", b"]", b"?", b"\t", b"0", b"9999999999"]  # fmt: skip


OPS = (0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 4, 5)  # weights: punctuation and flips most often


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Apply 1-6 random edits: bit flip, deletion, SIP punctuation, random bytes, splice
    with another seed, truncation. Plain `random` keeps hypothesis' per-example cost low;
    the failing (seed, rng seed) pair is what hypothesis reports and shrinks."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not out:
            break
        head = out.find(b"\r\n\r\n")
        limit = head + 4 if head > 0 and rng.random() < 0.8 else len(out)
        pos = rng.randrange(limit)  # mostly inside the head, where the parsing happens
        op = rng.choice(OPS)
        if op == 0:
            out[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            del out[pos : pos + rng.randint(1, 8)]
        elif op == 2:
            out[pos:pos] = rng.choice(PUNCTUATION)
        elif op == 3:
            out[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 4:
            other = rng.choice(SEEDS)
            out[pos:] = other[rng.randint(0, len(other)) :]
        else:
            del out[pos:]
    return bytes(out)


def mutated() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda seed, n: mutate(seed, random.Random(n)),
        st.sampled_from(SEEDS),
        st.integers(0, 2**32),
    )


_NAMES = st.sampled_from(
    ["Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m", "Route",
     "Record-Route", "Max-Forwards", "Expires", "Content-Type", "c", "Content-Length", "l",
     "Date", "Warning", "Retry-After", "Min-Expires", "X-Custom"]
)  # fmt: skip
_VALUES = st.text(alphabet='aZ09 ;,<>"\\:@=%.-_*[]/?\tsip', max_size=30)
_PREFIXES = st.sampled_from(["", "sip:a@h", "<sip:a@h>", "SIP/2.0/UDP h", "1 INVITE", '"d" '])


@st.composite
def synthetic(draw: st.DrawFn) -> bytes:
    start = draw(
        st.sampled_from(
            [b"INVITE sip:a@h SIP/2.0", b"SIP/2.0 200 OK", b"BYE sips:b@[::1]:5 SIP/2.0"]
        )
    )
    lines = [start]
    for _ in range(draw(st.integers(0, 8))):
        name = draw(_NAMES)
        value = draw(_PREFIXES) + draw(_VALUES)
        lines.append(f"{name}: {value}".encode())
    body = draw(st.binary(max_size=20))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _exercise(msg: Any) -> None:
    """Read every typed value; check printed forms parse back."""
    for name in ("call_id", "cseq", "via", "vias", "from_", "to", "from_tag", "to_tag",
                 "contacts", "max_forwards", "expires", "routes", "record_routes",
                 "content_type"):  # fmt: skip
        try:
            getattr(msg, name)
        except ParseError:
            pass
    if msg.is_request:
        try:
            uri = msg.uri
        except ParseError:
            uri = None
        if uri is not None:
            assert parse_uri(str(uri)) == uri
    try:
        vias = msg.vias
    except ParseError:
        vias = []
    for via in vias:
        assert Via.parse(str(via)) == via
    for key in ("from_", "to"):
        try:
            addr = getattr(msg, key)
        except ParseError:
            continue
        again = parse_name_addr(str(addr))
        assert (again.display, again.params) == (addr.display, addr.params)
        assert again.uri == addr.uri
        # the URI-free fast path for tags agrees with the full parse
        assert params_of(msg.headers.get(key.rstrip("_").title())) == addr.params


def check(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except ParseError:
        return
    try:
        validate(msg)
    except ParseError:
        pass
    _exercise(msg)
    wire = bytes(msg)
    again = parse_message(wire)
    assert bytes(again) == wire
    assert list(again.headers)[:-1] == [(n, v) for n, v in msg.headers if n != "Content-Length"]
    assert again.body == msg.body
    msg.to_dict()
    stream = StreamParser()
    assert [bytes(m) for m in stream.feed(wire + b"\r\n" + wire)] == [wire, wire]


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


@fuzz(10000)
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    check(data)


@fuzz(4000)
@given(synthetic())
def test_synthetic_messages(data: bytes) -> None:
    check(data)


@fuzz(4000)
@given(st.binary(max_size=200).map(lambda b: b"OPTIONS sip:a@h SIP/2.0\r\n" + b))
def test_random_bytes_after_a_start_line(data: bytes) -> None:
    check(data)


@fuzz(2000)
@given(mutated(), st.integers(1, 50))
def test_streams_of_mutated_messages(data: bytes, chunk: int) -> None:
    parser = StreamParser()
    try:
        for i in range(0, len(data), chunk):
            for msg in parser.feed(data[i : i + chunk]):
                _exercise(msg)
    except ParseError:
        pass


def test_seeds_cover_the_torture_set_when_present() -> None:
    folder = rfc4475_path()
    assert len(SEEDS) == len(SYNTHETIC) + (49 if folder is not None else 0)
    for seed in SEEDS:
        check(seed)
