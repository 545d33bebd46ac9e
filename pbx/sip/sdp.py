"""SDP (RFC 8866, formerly RFC 4566) parse/serialize and RFC 3264 offer/answer for audio.

Theory of operation: `SessionDescription.parse` turns the body of an INVITE/200/ACK into frozen
dataclasses, `str(sd)` serializes it canonically (CRLF, line order of RFC 8866 section 5), and
`parse(str(sd)) == sd`. Attributes the PBX understands (rtpmap, fmtp, ptime, maxptime, rtcp and
the direction attributes) become fields; every other attribute is kept verbatim, in order, so a
relayed description loses nothing, and so does a malformed value of a known attribute.
A malformed line structure (v o s c t m b, RFC 8866 section 9 grammar) raises `ParseError` (400).

Offer/answer (RFC 3264): `make_offer` and `make_answer` build descriptions from an `AudioPolicy`;
`make_answer` raises `NoCommonCodec` (the B2BUA replies 488) when no audio stream can be accepted.
`LocalSession` stamps our o= line and bumps its version only when the content changed (RFC 3264
section 8). `rewrite_for_relay` points a description at the PBX's RTP relay. Sans-IO: no sockets,
no clock.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from pbx.sip.errors import ParseError, SipError

_DIGITS = re.compile(r"[0-9]{1,19}")
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_PROTO = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+(?:/[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)*")
_FORBIDDEN = re.compile(r"[\x00\r]")
_is_digits = _DIGITS.fullmatch
_is_token = _TOKEN.fullmatch
# a=rtpmap as phones write it (one blank, RFC 8866 6.6); other spellings take the general path
_RTPMAP_FAST = re.compile(
    r"(\S+) ([!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+)/([0-9]{1,19})(?:/([0-9]{1,19}))?"
).fullmatch


class Direction(enum.Enum):
    """Media direction attributes, RFC 8866 section 6.7 (absent means sendrecv)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @staticmethod
    def of(sends: bool, receives: bool) -> Direction:
        return _DIRECTION_BY_FLAGS[(sends, receives)]


_DIRECTION_BY_FLAGS = {
    (True, True): Direction.SENDRECV,
    (True, False): Direction.SENDONLY,
    (False, True): Direction.RECVONLY,
    (False, False): Direction.INACTIVE,
}
_DIRECTIONS = {d.value: d for d in Direction}


class Preference(enum.Enum):
    """Whose codec order wins in an answer (RFC 3264 section 6.1 lets the answerer choose)."""

    OFFERER = "offerer"
    OURS = "ours"


@dataclass(frozen=True, slots=True)
class Origin:
    """o= line, RFC 8866 section 5.2. The version is what RFC 3264 section 8 bumps."""

    username: str
    session_id: str
    session_version: int
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"


@dataclass(frozen=True, slots=True)
class Connection:
    """c= line, RFC 8866 section 5.7. Address kept as text (may carry /ttl for multicast)."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    @property
    def is_hold(self) -> bool:
        """RFC 2543 hold: c=IN IP4 0.0.0.0 (RFC 3264 section 8.4 still asks us to honour it);
        some IPv6 stacks send the unspecified address "::" the same way."""
        return self.address in ("0.0.0.0", "::")


@dataclass(frozen=True, slots=True)
class Bandwidth:
    """b= line, RFC 8866 section 5.8 (kbit/s for AS/CT, bit/s for TIAS)."""

    bwtype: str
    value: int


@dataclass(frozen=True, slots=True)
class Timing:
    """t= line with its r= repeat lines kept verbatim, RFC 8866 sections 5.9 and 5.10."""

    start: int = 0
    stop: int = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attribute:
    """An a= line the PBX does not interpret; value None for property attributes."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class Encoding:
    """a=rtpmap encoding, RFC 8866 section 6.6: name/clock-rate[/channels]."""

    name: str
    clock_rate: int
    channels: int | None = None

    def __str__(self) -> str:
        tail = "" if self.channels is None else f"/{self.channels}"
        return f"{self.name}/{self.clock_rate}{tail}"


@dataclass(frozen=True, slots=True)
class Format:
    """One fmt of an m= line with its rtpmap and fmtp (RFC 8866 sections 6.6 and 6.15)."""

    fmt: str
    encoding: Encoding | None = None
    params: str | None = None


@dataclass(frozen=True, slots=True)
class Rtcp:
    """a=rtcp, RFC 3605: RTCP port (and address) when it is not RTP port + 1."""

    port: int
    connection: Connection | None = None


@dataclass(frozen=True, slots=True)
class Codec:
    """A resolved RTP payload: static table (RFC 3551 section 6) or rtpmap, plus fmtp."""

    payload_type: int
    name: str
    clock_rate: int
    channels: int | None = None
    fmtp: str | None = None

    def as_format(self) -> Format:
        enc = Encoding(self.name, self.clock_rate, self.channels)
        return Format(str(self.payload_type), enc, self.fmtp)

    def same_codec(self, other: Codec) -> bool:
        """RFC 3264 section 6.1: codecs match by encoding name and clock rate, not number."""
        return (self.name.lower(), self.clock_rate, self.channels or 1) == (
            other.name.lower(),
            other.clock_rate,
            other.channels or 1,
        )


# RFC 3551 section 6, the static audio payload types a device may send without rtpmap.
STATIC_PAYLOADS: dict[int, Encoding] = {
    0: Encoding("PCMU", 8000),
    3: Encoding("GSM", 8000),
    4: Encoding("G723", 8000),
    8: Encoding("PCMA", 8000),
    9: Encoding("G722", 8000),
    13: Encoding("CN", 8000),
    18: Encoding("G729", 8000),
}
RTP_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})

PCMU = Codec(0, "PCMU", 8000)
PCMA = Codec(8, "PCMA", 8000)
TELEPHONE_EVENT = Codec(101, "telephone-event", 8000, fmtp="0-16")
# Payloads that carry no voice: never enough on their own for a call (RFC 4733, RFC 3389).
AUXILIARY = frozenset({"telephone-event", "cn"})


@dataclass(frozen=True, slots=True)
class Media:
    """One m= section, RFC 8866 section 5.14. port 0 means the stream is disabled/rejected."""

    kind: str
    port: int
    proto: str
    formats: tuple[Format, ...]
    port_count: int | None = None
    title: str | None = None
    connection: Connection | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    key: str | None = None
    ptime: int | None = None
    maxptime: int | None = None
    rtcp: Rtcp | None = None
    direction: Direction | None = None
    attributes: tuple[Attribute, ...] = ()

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper() in RTP_PROTOS

    def codecs(self) -> tuple[Codec, ...]:
        """Payloads in offer order; dynamic ones without rtpmap are unknown and skipped."""
        out = []
        for f in self.formats:
            if not _DIGITS.fullmatch(f.fmt) or int(f.fmt) > 127:
                continue
            pt = int(f.fmt)
            enc = f.encoding or STATIC_PAYLOADS.get(pt)
            if enc is not None:
                out.append(Codec(pt, enc.name, enc.clock_rate, enc.channels, f.params))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body. Build with keywords; `str()` gives the wire form, `bytes()` UTF-8."""

    origin: Origin
    name: str = "-"
    connection: Connection | None = None
    media: tuple[Media, ...] = ()
    timings: tuple[Timing, ...] = (Timing(),)
    direction: Direction | None = None
    bandwidths: tuple[Bandwidth, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    info: str | None = None
    uri: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    zone: str | None = None
    key: str | None = None
    version: int = 0

    @classmethod
    def parse(cls, data: str | bytes) -> SessionDescription:
        return parse(data)

    def __str__(self) -> str:
        return serialize(self)

    def __bytes__(self) -> bytes:
        return serialize(self).encode("utf-8")

    def connection_for(self, media: Media) -> Connection | None:
        """RFC 8866 section 5.7: a media-level c= overrides the session-level one."""
        return media.connection or self.connection

    def direction_for(self, media: Media) -> Direction:
        """Direction as the sender of this description means it, RFC 3264 section 8.4
        (c=0.0.0.0 is the RFC 2543 way of saying "do not send to me")."""
        stated = media.direction or self.direction or Direction.SENDRECV
        conn = self.connection_for(media)
        if conn is not None and conn.is_hold:
            return Direction.of(stated.sends, False)
        return stated

    def is_hold(self) -> bool:
        """True when every active audio stream asks us not to send (remote put us on hold)."""
        audio = [m for m in self.media if m.kind == "audio" and m.port != 0]
        return bool(audio) and not any(self.direction_for(m).receives for m in audio)


# ---------------------------------------------------------------------------------------------
# Parsing


def _int(text: str, what: str, limit: int | None = None) -> int:
    if not _is_digits(text):
        raise ParseError(f"SDP: {what} is not a number: {text!r}")
    value = int(text)
    if limit is not None and value > limit:
        raise ParseError(f"SDP: {what} out of range: {value}")
    return value


def _fields(value: str, count: int, what: str) -> list[str]:
    parts = value.split()
    if len(parts) != count:
        raise ParseError(f"SDP: {what} needs {count} fields: {value!r}")
    return parts


def _token(text: str, what: str) -> str:
    if not _is_token(text):
        raise ParseError(f"SDP: bad {what}: {text!r}")
    return text


def _proto(text: str) -> str:
    if not _PROTO.fullmatch(text):
        raise ParseError(f"SDP: bad m= proto: {text!r}")
    return text


def _parse_origin(value: str) -> Origin:
    user, sid, ver, net, atype, addr = _fields(value, 6, "o=")
    return Origin(user, _token(sid, "session id"), _int(ver, "o= version"), addr, atype, net)


def _parse_connection(value: str) -> Connection:
    net, atype, addr = _fields(value, 3, "c=")
    return Connection(addr, _token(atype, "addrtype"), _token(net, "nettype"))


def _parse_bandwidth(value: str) -> Bandwidth:
    bwtype, sep, amount = value.partition(":")
    if not sep:
        raise ParseError(f"SDP: bad b= line: {value!r}")
    return Bandwidth(_token(bwtype, "bwtype"), _int(amount, "bandwidth"))


def _parse_timing(value: str) -> Timing:
    start, stop = _fields(value, 2, "t=")
    return Timing(_int(start, "t= start"), _int(stop, "t= stop"))


class _MediaLine(NamedTuple):
    """An m= line's fields, kept until its section ends and the Media is built once."""

    kind: str
    port: int
    proto: str
    fmts: list[str]
    port_count: int | None


def _parse_media_line(value: str) -> _MediaLine:
    parts = value.split()
    if len(parts) < 4:
        raise ParseError(f"SDP: m= needs media, port, proto and a format: {value!r}")
    port_text, sep, count_text = parts[1].partition("/")
    count = _int(count_text, "m= port count") if sep else None
    port = _int(port_text, "m= port", 65535)
    fmts = parts[3:]
    if not _is_token("".join(fmts)):  # tokens joined are one token: one match for all
        for fmt in fmts:
            _token(fmt, "m= format")
    if len(set(fmts)) != len(fmts):
        raise ParseError(f"SDP: m= lists a format twice: {value!r}")
    return _MediaLine(_token(parts[0], "media"), port, _proto(parts[2]), fmts, count)


def _parse_rtpmap(value: str) -> tuple[str, str, Encoding]:
    pt, spec = _fields(value, 2, "a=rtpmap")
    parts = spec.split("/")
    if len(parts) not in (2, 3):
        raise ParseError(f"SDP: bad a=rtpmap encoding: {spec!r}")
    channels = _int(parts[2], "rtpmap channels") if len(parts) == 3 else None
    encoding = Encoding(_token(parts[0], "encoding"), _int(parts[1], "clock rate"), channels)
    return pt, "rtpmap", encoding


def _parse_rtcp(value: str) -> Rtcp:
    parts = value.split()
    if len(parts) not in (1, 4):
        raise ParseError(f"SDP: bad a=rtcp: {value!r}")
    conn = _parse_connection(" ".join(parts[1:])) if len(parts) == 4 else None
    return Rtcp(_int(parts[0], "rtcp port", 65535), conn)


class _Section:
    """Mutable collector for one session or media section while lines are read."""

    def __init__(self, media: _MediaLine | None = None) -> None:
        self.media = media
        self.values: dict[str, object] = {}
        self.lists: dict[str, list[object]] = {}
        self.formats = dict.fromkeys(media.fmts) if media else {}
        self.extras: dict[str, dict[str, object]] = {}

    def set_once(self, key: str, value: object) -> None:
        if key in self.values:
            raise ParseError(f"SDP: duplicate {key} in one section")
        self.values[key] = value

    def add(self, key: str, value: object) -> None:
        self.lists.setdefault(key, []).append(value)

    def attribute(self, value: str) -> None:
        """One a= line: a direction, an attribute the PBX interprets, or one kept verbatim."""
        name, sep, rest = value.partition(":")
        if not sep:
            direction = _DIRECTIONS.get(name)  # the usual "a=sendrecv": a token already
            if direction is None:
                # "a=sendrecv " with a trailing blank is common enough to forgive.
                name = _token(name.rstrip(" \t"), "attribute name")
                direction = _DIRECTIONS.get(name)
            if direction is not None:
                self.set_once("direction", direction)
            else:
                self.add("attributes", Attribute(name))
            return
        if name == "rtpmap" and self.media is not None:
            # The usual "8 PCMA/8000" in one match, with the checks of _parse_rtpmap.
            match = _RTPMAP_FAST(rest)
            if match is not None:
                pt, encoding, rate, channels = match.groups()
                parsed = Encoding(encoding, int(rate), int(channels) if channels else None)
                if not self.format_attr(pt, "rtpmap", parsed):
                    self.add("attributes", Attribute(name, rest))
                return
        _token(name, "attribute name")
        handler = _MEDIA_ATTRS.get(name) if self.media else None
        if handler is None or not self._interpret(handler, rest):
            self.add("attributes", Attribute(name, rest))

    def _interpret(self, handler: Callable[[_Section, str], bool], value: str) -> bool:
        """A malformed or repeated rtpmap/fmtp/ptime/maxptime/rtcp stays a verbatim attribute
        instead of failing the whole body: RFC 8866 section 5.13 has receivers ignore what
        they do not understand, and RFC 4475's own bodies carry "a=rtpmap:31 LPC"."""
        try:
            return handler(self, value)
        except ParseError:
            return False

    def format_attr(self, fmt: str, key: str, parsed: Encoding | str) -> bool:
        if fmt not in self.formats:
            return False  # rtpmap/fmtp for a format not offered: keep it verbatim
        table = self.extras.setdefault(key, {})
        if fmt in table:
            return False
        table[fmt] = parsed
        return True

    def build_media(self) -> Media:
        assert self.media is not None
        lists = {k: tuple(v) for k, v in self.lists.items()}
        encodings, params = self.extras.get("rtpmap", {}), self.extras.get("fmtp", {})
        formats = tuple(
            Format(fmt, encodings.get(fmt), params.get(fmt))  # type: ignore[arg-type]
            for fmt in self.formats
        )
        m = self.media
        return Media(m.kind, m.port, m.proto, formats, m.port_count, **self.values, **lists)  # type: ignore[arg-type]


def _rtpmap(section: _Section, value: str) -> bool:
    return section.format_attr(*_parse_rtpmap(value))


def _fmtp(section: _Section, value: str) -> bool:
    parts = value.split(maxsplit=1)
    if len(parts) != 2:
        raise ParseError(f"SDP: bad a=fmtp: {value!r}")
    return section.format_attr(parts[0], "fmtp", parts[1].strip())


def _single(key: str, fn: Callable[[str], object]) -> Callable[[_Section, str], bool]:
    def handle(section: _Section, value: str) -> bool:
        if key in section.values:
            return False
        section.values[key] = fn(value)
        return True

    return handle


_MEDIA_ATTRS: dict[str, Callable[[_Section, str], bool]] = {
    "rtpmap": _rtpmap,
    "fmtp": _fmtp,
    "ptime": _single("ptime", lambda v: _int(v.strip(), "ptime")),
    "maxptime": _single("maxptime", lambda v: _int(v.strip(), "maxptime")),
    "rtcp": _single("rtcp", _parse_rtcp),
}

# line type -> (session key, media key, parser, repeatable). Unknown types are an error
# (RFC 8866 section 5: a parser must not silently ignore a type letter it does not know).
_LINES: dict[str, tuple[str | None, str | None, Callable[[str], object], bool]] = {
    "i": ("info", "title", str, False),
    "u": ("uri", None, str, False),
    "e": ("emails", None, str, True),
    "p": ("phones", None, str, True),
    "c": ("connection", "connection", _parse_connection, False),
    "b": ("bandwidths", "bandwidths", _parse_bandwidth, True),
    "t": ("timings", None, _parse_timing, True),
    "z": ("zone", None, str, False),
    "k": ("key", "key", str, False),
}


def _split_lines(data: str | bytes) -> list[str]:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"SDP: not UTF-8 ({exc.reason})") from None
    # One scan of the whole body tells whether any line can hold NUL or a bare CR; only then
    # is each line searched (the usual CRLF body skips len(lines) regex searches).
    suspicious = "\x00" in data or data.count("\r") != data.count("\r\n") + data.endswith("\r")
    if not suspicious and data.count("\n") == data.count("\r\n"):
        lines = data.split("\r\n")  # every line ends in CRLF: no per-line stripping
        if lines[-1].endswith("\r"):
            lines[-1] = lines[-1][:-1]
    else:
        lines = [line[:-1] if line.endswith("\r") else line for line in data.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        if len(line) < 2 or line[1] != "=" or (suspicious and _FORBIDDEN.search(line)):
            raise ParseError(f"SDP: malformed line: {line[:40]!r}")
    return lines


def parse(data: str | bytes) -> SessionDescription:
    """Parse an SDP body (CRLF or bare LF lines); raise ParseError on anything malformed."""
    lines = _split_lines(data)
    if not lines or lines[0] != "v=0":
        raise ParseError("SDP: must start with v=0")
    session = _Section()
    media: list[Media] = []
    current = session
    for line in lines[1:]:
        kind, value = line[0], line[2:]
        if kind == "m":
            if current is not session:
                media.append(current.build_media())
            current = _Section(_parse_media_line(value))
        elif kind == "a":
            current.attribute(value)
        elif kind in ("o", "s") and current is session:
            session.set_once(kind, _parse_origin(value) if kind == "o" else value)
        elif kind == "r" and current is session and session.lists.get("timings"):
            timing = session.lists["timings"].pop()
            assert isinstance(timing, Timing)
            session.add("timings", replace(timing, repeats=(*timing.repeats, value)))
        else:
            _store_line(current, current is session, kind, value)
    if current is not session:
        media.append(current.build_media())
    return _build_session(session, media)


def _store_line(section: _Section, at_session: bool, kind: str, value: str) -> None:
    session_key, media_key, parser, repeatable = _LINES.get(kind, (None, None, str, False))
    key = session_key if at_session else media_key
    if key is None:
        where = "session" if at_session else "media"
        raise ParseError(f"SDP: unexpected {kind}= line at {where} level")
    if repeatable:
        section.add(key, parser(value))
    else:
        section.set_once(key, parser(value))


def _build_session(section: _Section, media: list[Media]) -> SessionDescription:
    values = dict(section.values)
    origin = values.pop("o", None)
    name = values.pop("s", None)
    if not isinstance(origin, Origin) or not isinstance(name, str):
        raise ParseError("SDP: o= and s= lines are required")
    lists = {k: tuple(v) for k, v in section.lists.items()}
    lists.setdefault("timings", ())
    return SessionDescription(origin, name, media=tuple(media), **values, **lists)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Serialization: canonical order of RFC 8866 section 5, CRLF line ends.


def _origin_text(o: Origin) -> str:
    return f"{o.username} {o.session_id} {o.session_version} {o.nettype} {o.addrtype} {o.address}"


def _conn_text(c: Connection) -> str:
    return f"{c.nettype} {c.addrtype} {c.address}"


def _media_lines(m: Media, out: list[str]) -> None:
    """Append one m= section's lines to `out`, in the order of RFC 8866 section 5."""
    add = out.append
    port = f"{m.port}" if m.port_count is None else f"{m.port}/{m.port_count}"
    add(f"m={m.kind} {port} {m.proto} {' '.join([f.fmt for f in m.formats])}")
    if m.title is not None:
        add(f"i={m.title}")
    if m.connection:
        add(f"c={_conn_text(m.connection)}")
    for b in m.bandwidths:
        add(f"b={b.bwtype}:{b.value}")
    if m.key is not None:
        add(f"k={m.key}")
    for f in m.formats:
        if f.encoding:
            add(f"a=rtpmap:{f.fmt} {f.encoding}")
        if f.params is not None:
            add(f"a=fmtp:{f.fmt} {f.params}")
    if m.ptime is not None:
        add(f"a=ptime:{m.ptime}")
    if m.maxptime is not None:
        add(f"a=maxptime:{m.maxptime}")
    if m.rtcp is not None:
        tail = f" {_conn_text(m.rtcp.connection)}" if m.rtcp.connection else ""
        add(f"a=rtcp:{m.rtcp.port}{tail}")
    for a in m.attributes:
        add(f"a={a}")
    if m.direction:
        add(f"a={m.direction.value}")


def serialize(sd: SessionDescription) -> str:
    """Wire form: v o s i u e p c b t r z k a, then each m= section (RFC 8866 section 5)."""
    out = [f"v={sd.version}", f"o={_origin_text(sd.origin)}", f"s={sd.name}"]
    add = out.append
    if sd.info is not None:
        add(f"i={sd.info}")
    if sd.uri is not None:
        add(f"u={sd.uri}")
    out += [f"e={e}" for e in sd.emails]
    out += [f"p={p}" for p in sd.phones]
    if sd.connection:
        add(f"c={_conn_text(sd.connection)}")
    for b in sd.bandwidths:
        add(f"b={b.bwtype}:{b.value}")
    for t in sd.timings:
        add(f"t={t.start} {t.stop}")
        out += [f"r={r}" for r in t.repeats]
    if sd.zone is not None:
        add(f"z={sd.zone}")
    if sd.key is not None:
        add(f"k={sd.key}")
    for a in sd.attributes:
        add(f"a={a}")
    if sd.direction:
        add(f"a={sd.direction.value}")
    for m in sd.media:
        _media_lines(m, out)
    add("")
    return "\r\n".join(out)


# ---------------------------------------------------------------------------------------------
# Offer/answer for audio, RFC 3264.


class NoCommonCodec(SipError):
    """The offer has no audio stream we can accept: the B2BUA answers 488 (RFC 3264 section 6)."""

    status = 488
    reason = "Not Acceptable Here"

    def __init__(self, offered: tuple[Codec, ...]) -> None:
        names = ", ".join(f"{c.name}/{c.clock_rate}" for c in offered) or "none"
        super().__init__(f"488 Not Acceptable Here (no common audio codec; offered: {names})")
        self.offered = offered


@dataclass(frozen=True, slots=True)
class AudioPolicy:
    """What we support and want: codecs in our preference order, whose order wins, and our
    own direction (SENDONLY to put the peer on hold, RFC 3264 section 8.4)."""

    codecs: tuple[Codec, ...] = (PCMU, PCMA, TELEPHONE_EVENT)
    preference: Preference = Preference.OFFERER
    ptime: int | None = 20
    direction: Direction = Direction.SENDRECV


@functools.lru_cache(maxsize=1024)
def addrtype_of(address: str) -> str:
    """IP6 for an IPv6 literal, IP4 otherwise (names and IPv4), RFC 8866 section 5.7.
    Cached: the same few relay and phone addresses come back on every call."""
    try:
        return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    except ValueError:
        return "IP4"


def parse_events(params: str | None) -> frozenset[int] | None:
    """RFC 4733 section 2.4.1 event list "0-15,66"; no fmtp means 0-15. None if malformed."""
    if params is None:
        return frozenset(range(16))
    events: set[int] = set()
    for part in params.replace(" ", "").split(","):
        low, sep, high = part.partition("-")
        if not _DIGITS.fullmatch(low) or (sep and not _DIGITS.fullmatch(high)):
            return None
        events.update(range(int(low), int(high if sep else low) + 1))
    return frozenset(events)


def format_events(events: frozenset[int]) -> str:
    """Inverse of parse_events: sorted, runs collapsed ("0-16", "0-11,16")."""
    runs: list[list[int]] = []
    for e in sorted(events):
        if runs and runs[-1][1] == e - 1:
            runs[-1][1] = e
        else:
            runs.append([e, e])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _answer_fmtp(offered: Codec, ours: Codec) -> str | None:
    """Telephone-event: the events both sides know (RFC 4733 section 7.1); else our fmtp."""
    if ours.name.lower() != "telephone-event":
        return ours.fmtp
    theirs, mine = parse_events(offered.fmtp), parse_events(ours.fmtp)
    if theirs is None or mine is None or not theirs & mine:
        return ours.fmtp
    return format_events(theirs & mine)


def negotiate(offered: Sequence[Codec], policy: AudioPolicy) -> tuple[Codec, ...]:
    """Codecs common to the offer and us, with the offerer's payload numbers (RFC 3264
    section 6.1), in the order `policy.preference` picks. Raises NoCommonCodec when only
    auxiliary payloads (telephone-event, CN) match: they cannot carry a call."""
    matches: list[tuple[int, int, Codec]] = []
    used: set[int] = set()
    for oi, theirs in enumerate(offered):
        li = next((i for i, c in enumerate(policy.codecs) if c.same_codec(theirs)), None)
        if li is None or li in used:
            continue
        used.add(li)
        ours = policy.codecs[li]
        matches.append((oi, li, replace(theirs, fmtp=_answer_fmtp(theirs, ours))))
    voice = [m for m in matches if m[2].name.lower() not in AUXILIARY]
    if not voice:
        raise NoCommonCodec(tuple(offered))
    rates = {m[2].clock_rate for m in voice}
    kept = [m for m in matches if m in voice or m[2].clock_rate in rates]
    position = 0 if policy.preference is Preference.OFFERER else 1
    kept.sort(key=lambda m: (m[2].name.lower() in AUXILIARY, m[position]))
    return tuple(m[2] for m in kept)


def _rejected(m: Media) -> Media:
    """RFC 3264 section 6: a declined stream stays in place with port 0 and its formats."""
    return Media(m.kind, 0, m.proto, tuple(Format(f.fmt) for f in m.formats))


def _audio_media(
    codecs: Sequence[Codec], port: int, ptime: int | None, direction: Direction, proto: str
) -> Media:
    formats = tuple(c.as_format() for c in codecs)
    return Media("audio", port, proto, formats, ptime=ptime, direction=direction)


def _placeholder_origin(address: str) -> Origin:
    return Origin("-", "0", 0, address, addrtype_of(address))


def make_offer(address: str, port: int, policy: AudioPolicy = AudioPolicy()) -> SessionDescription:
    """A one-stream audio offer; stamp it with LocalSession.describe before sending."""
    media = _audio_media(policy.codecs, port, policy.ptime, policy.direction, "RTP/AVP")
    conn = Connection(address, addrtype_of(address))
    return SessionDescription(_placeholder_origin(address), connection=conn, media=(media,))


def make_answer(
    offer: SessionDescription, address: str, port: int, policy: AudioPolicy = AudioPolicy()
) -> SessionDescription:
    """RFC 3264 section 6: one answer m= per offer m=, same order. The first audio RTP stream
    with a common codec is accepted; every other stream is declined with port 0 (the relay
    carries one audio stream per leg). Direction is the offer's mirrored, limited by ours."""
    answered: list[Media] = []
    offered_all: list[Codec] = []
    accepted = False
    for m in offer.media:
        if accepted or m.port == 0 or m.kind != "audio" or not m.is_rtp:
            answered.append(_rejected(m))
            continue
        offered_all += m.codecs()
        try:
            codecs = negotiate(m.codecs(), policy)
        except NoCommonCodec:
            answered.append(_rejected(m))
            continue
        theirs = offer.direction_for(m)
        mine = Direction.of(
            theirs.receives and policy.direction.sends, theirs.sends and policy.direction.receives
        )
        ptime = policy.ptime if policy.ptime is not None else m.ptime
        answered.append(_audio_media(codecs, port, ptime, mine, m.proto))
        accepted = True
    if not accepted:
        raise NoCommonCodec(tuple(offered_all))
    return SessionDescription(
        _placeholder_origin(address),
        connection=Connection(address, addrtype_of(address)),
        media=tuple(answered),
        timings=offer.timings,  # RFC 3264 section 6: t= of the answer equals the offer's
    )


def restrict_offer(
    sd: SessionDescription, policy: AudioPolicy = AudioPolicy()
) -> SessionDescription:
    """The offer a B2BUA forwards to the other leg: each active audio stream keeps only the
    formats we can relay and record (the offerer's numbers, rtpmap and fmtp untouched), so the
    callee cannot pick a codec the caller's side of the PBX does not handle. Raises
    NoCommonCodec when no active audio stream keeps a voice codec."""
    media, kept_any = [], False
    for m in sd.media:
        if m.port == 0 or m.kind != "audio" or not m.is_rtp:
            media.append(m)
            continue
        try:
            wanted = {str(c.payload_type) for c in negotiate(m.codecs(), policy)}
        except NoCommonCodec:
            media.append(_rejected(m))
            continue
        media.append(replace(m, formats=tuple(f for f in m.formats if f.fmt in wanted)))
        kept_any = True
    if not kept_any:
        raise NoCommonCodec(tuple(c for m in sd.media for c in m.codecs()))
    return replace(sd, media=tuple(media))


_LAWS = {"PCMU": PCMU, "PCMA": PCMA}
_OTHER_LAW = {"PCMU": PCMA, "PCMA": PCMU}


def _first_audio(sd: SessionDescription) -> int | None:
    """The index of the first active RTP audio stream, the one a call's voice takes."""
    return next(
        (i for i, m in enumerate(sd.media) if m.kind == "audio" and m.port and m.is_rtp), None
    )


def with_other_law(offer: SessionDescription) -> SessionDescription:
    """`offer` as a B2BUA passes it on when it can transcode G.711: an offer that lists one
    law only (PCMU or PCMA) also lists the other, last, so a phone set to A-law alone can take
    a call from one set to mu-law alone, as it can through Asterisk or FreeSWITCH. Both laws
    sample at 8 kHz one octet a sample (RFC 3551 4.5.14), so the relay converts between them
    with a table (pbx.media.transcode); `settled_law` turns the answer back. Any other offer
    comes back as it is."""
    at = _first_audio(offer)
    if at is None:
        return offer
    stream = offer.media[at]
    laws = {c.name.upper() for c in stream.codecs()} & _LAWS.keys()
    if len(laws) != 1:
        return offer
    other = _OTHER_LAW[laws.pop()]
    if any(f.fmt == str(other.payload_type) for f in stream.formats):
        return offer  # its number already names something else
    media = list(offer.media)
    media[at] = replace(stream, formats=(*stream.formats, other.as_format()))
    return replace(offer, media=tuple(media))


def settled_law(
    answer: SessionDescription, offer: SessionDescription
) -> tuple[SessionDescription, Codec | None, Codec | None]:
    """(the answer as the offerer gets it, the offerer's voice codec, the answerer's).

    When the answerer chose the G.711 law the offerer did not list (`with_other_law` added
    it), the offerer's own law takes its place and the codecs differ: the relay transcodes.
    Otherwise the answer is unchanged and both codecs are its first voice codec (None when
    it has no active audio stream or no voice codec)."""
    at = _first_audio(answer)
    if at is None:
        return answer, None, None
    stream = answer.media[at]
    codecs = stream.codecs()
    theirs = next((c for c in codecs if c.name.lower() not in AUXILIARY), None)
    if theirs is None:
        return answer, None, None
    offered = _first_audio(offer)
    listed = offer.media[offered].codecs() if offered is not None else ()
    if theirs.name.upper() not in _LAWS or any(theirs.same_codec(c) for c in listed):
        return answer, theirs, theirs
    mine = next((c for c in listed if c.same_codec(_OTHER_LAW[theirs.name.upper()])), None)
    if mine is None:
        return answer, theirs, theirs  # not an answer to our offer: left as it came
    auxiliary = {str(c.payload_type) for c in codecs if c.name.lower() in AUXILIARY}
    formats = (mine.as_format(), *(f for f in stream.formats if f.fmt in auxiliary))
    media = list(answer.media)
    media[at] = replace(stream, formats=formats)
    return replace(answer, media=tuple(media)), mine, theirs


def with_direction(sd: SessionDescription, direction: Direction) -> SessionDescription:
    """Our next offer with every active audio stream set to `direction`: SENDONLY (or INACTIVE)
    to hold, SENDRECV to resume (RFC 3264 section 8.4)."""
    media = tuple(
        replace(m, direction=direction) if m.kind == "audio" and m.port != 0 else m
        for m in sd.media
    )
    return replace(sd, media=media, direction=None)


class LocalSession:
    """Our side of one SDP session: a fixed o= identity whose version goes up by one each
    time the description we send changes, and only then (RFC 3264 section 8, RFC 8866 5.2)."""

    def __init__(
        self, address: str, session_id: int, version: int | None = None, username: str = "-"
    ) -> None:
        self.origin = Origin(
            username,
            str(session_id),
            session_id if version is None else version,
            address,
            addrtype_of(address),
        )
        self._last: SessionDescription | None = None

    def describe(self, sd: SessionDescription) -> SessionDescription:
        """Stamp `sd` with our origin, bumping the version if it differs from the last one."""
        body = sd if sd.origin is self.origin else _copy(sd, origin=self.origin)
        if self._last is not None and body != self._last:
            self.origin = replace(self.origin, session_version=self.origin.session_version + 1)
            body = _copy(sd, origin=self.origin)
        self._last = body
        return body

    def offer(self, port: int, policy: AudioPolicy = AudioPolicy()) -> SessionDescription:
        return self.describe(make_offer(self.origin.address, port, policy))

    def answer(
        self, offer: SessionDescription, port: int, policy: AudioPolicy = AudioPolicy()
    ) -> SessionDescription:
        return self.describe(make_answer(offer, self.origin.address, port, policy))


# ---------------------------------------------------------------------------------------------
# Relay rewrite: the B2BUA hands each leg the PBX's own RTP address and ports.

# ICE attributes name the peer's real addresses; behind a relay they would route around it.
_ICE_ATTRIBUTES = frozenset(
    "candidate remote-candidates ice-ufrag ice-pwd ice-lite ice-options end-of-candidates "
    "ice-mismatch".split()
)


def _is_hold_address(conn: Connection | None) -> bool:
    return conn is not None and conn.is_hold


def rewrite_for_relay(
    sd: SessionDescription,
    address: str,
    ports: int | Mapping[int, int],
    rtcp_ports: Mapping[int, int] | None = None,
    *,
    origin: Origin | None = None,
) -> SessionDescription:
    """Copy of `sd` whose media goes through the relay at `address`.

    `ports` maps m= index to relay RTP port (an int means the first active audio stream).
    Active streams without a relay port are disabled (port 0), since their media would bypass
    the relay. a=rtcp (RFC 3605) is set to the relay's RTCP port when `rtcp_ports` has one,
    else dropped (RTCP then goes to RTP port + 1). c= and o= get the relay address with the
    right IP4/IP6 address type; media-level c= lines go, the session c= covers all. An RFC 2543
    hold (c=0.0.0.0) becomes an explicit sendonly/inactive attribute, so the hold survives the
    new address (RFC 3264 section 8.4). The B2BUA stamps the result with the outgoing leg's
    LocalSession.describe, so each peer sees one o= identity whose version tracks changes;
    passing that session's `origin` here saves describe() a second copy.
    """
    if isinstance(ports, int):
        first = next((i for i, m in enumerate(sd.media) if m.kind == "audio" and m.port), None)
        ports = {} if first is None else {first: ports}
    rtcp_ports = rtcp_ports or {}
    atype = addrtype_of(address)
    conn = Connection(address, atype)
    media = []
    for i, m in enumerate(sd.media):
        if m.port == 0 or i not in ports:
            media.append(_rejected(m) if m.port else m)
            continue
        rtcp = Rtcp(rtcp_ports[i], conn) if i in rtcp_ports else None
        attrs = tuple(a for a in m.attributes if a.name not in _ICE_ATTRIBUTES)
        held = _is_hold_address(sd.connection_for(m))
        direction = sd.direction_for(m) if held else m.direction
        media.append(Media(
            m.kind, ports[i], m.proto, m.formats, m.port_count, m.title, None, m.bandwidths,
            m.key, m.ptime, m.maxptime, rtcp, direction, attrs,
        ))  # fmt: skip
    attrs = tuple(a for a in sd.attributes if a.name not in _ICE_ATTRIBUTES)
    if origin is None:
        o = sd.origin
        origin = Origin(o.username, o.session_id, o.session_version, address, atype, o.nettype)
    # Positional, in field order (3 us less than _copy's keywords, twice a call; the
    # relay-rewrite tests check that every other field survives).
    return SessionDescription(
        origin, sd.name, conn, tuple(media), sd.timings, sd.direction, sd.bandwidths, attrs,
        sd.info, sd.uri, sd.emails, sd.phones, sd.zone, sd.key, sd.version,
    )  # fmt: skip


def _copy(sd: SessionDescription, **changes: object) -> SessionDescription:
    """`dataclasses.replace` for SessionDescription without its per-call field walk."""
    values = {name: getattr(sd, name) for name in _SD_FIELDS}
    values.update(changes)
    return SessionDescription(**values)  # type: ignore[arg-type]


_SD_FIELDS = SessionDescription.__dataclass_fields__.keys()
