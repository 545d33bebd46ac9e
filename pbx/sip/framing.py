"""Message framing on stream transports (RFC 3261 18.3): Content-Length decides where a
message ends; CRLF keep-alives (RFC 5626 3.5.1) between messages are skipped."""

from __future__ import annotations

from pbx.sip.errors import ParseError
from pbx.sip.message import MAX_BODY, MAX_HEAD, Request, Response, _parse_head

__all__ = ["StreamParser"]


class StreamParser:
    """Frames messages on a stream transport (RFC 3261 18.3): Content-Length is required,
    CRLF keep-alives between messages (RFC 5626 3.5.1) are skipped. After a ParseError
    the stream cannot be re-synchronised; the transport should close the connection."""

    __slots__ = ("_buffer", "_pending")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending: tuple[Request | Response, int, int] | None = None

    def feed(self, data: bytes) -> list[Request | Response]:
        self._buffer += data
        out: list[Request | Response] = []
        while True:
            msg = self._next()
            if msg is None:
                return out
            out.append(msg)

    def _next(self) -> Request | Response | None:
        buffer = self._buffer
        if self._pending is None:
            skip = 0
            while skip < len(buffer) and buffer[skip] in (13, 10):
                skip += 1
            if skip:
                del buffer[:skip]
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise ParseError("Message Too Large", 513)
                return None
            msg, length = _parse_head(bytes(buffer[:end]))
            if length is None:
                raise ParseError("Missing Content-Length")
            if length > MAX_BODY:
                raise ParseError("Message Too Large", 513)
            self._pending = (msg, end + 4, end + 4 + length)
        msg, start, stop = self._pending
        if len(buffer) < stop:
            return None
        msg.body = bytes(buffer[start:stop])
        del buffer[:stop]
        self._pending = None
        return msg

    @property
    def buffered(self) -> int:
        """Octets received but not yet part of a returned message."""
        return len(self._buffer)
