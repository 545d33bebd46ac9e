"""TCP: framing, connections, the connection table and the idle timeout.

On a stream SIP messages are delimited by Content-Length (RFC 3261 18.3:
"the Content-Length header field MUST be used with stream oriented
transports"). `StreamFramer` cuts the byte stream into one `bytes` per
message so the core gets exactly what `parse_message` expects, and it
enforces the maximum message size *before* buffering a body, which a
parser that frames whole messages cannot do. CRLF keep-alives between
messages are skipped; a double CRLF is a RFC 5626 section 3.5.1 ping and
is answered with a single CRLF pong.

`TcpTransport` owns the listening servers and every connection, inbound
and outbound, in a table keyed by connection id and by remote (host, port):
a request to a contact that registered over TCP goes back down the same
connection (RFC 3261 18.2.1 / RFC 5626 flows). A connection idle for longer
than `idle_timeout` seconds (no bytes in either direction) is closed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from pbx.sip.transport import ip_literal

log = logging.getLogger(__name__)

_HEAD_END = b"\r\n\r\n"
# Spelled case by case (not re.I) so the engine can jump from one "\n" to the next.
_CONTENT_LENGTH = re.compile(
    rb"\n(?:[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Ll])[ \t]*:[ \t]*"
    rb"([^\r\n]*?)[ \t]*(?=\r\n)"
)
_CONTENT_LENGTH_LINE = re.compile(rb"^(?:content-length|l)[ \t]*:[^\r\n]*\r\n", re.I | re.M)
_CRLF_BYTES = frozenset(b"\r\n")


@dataclass(frozen=True, slots=True)
class FrameError:
    """A message the framer cannot deliver; the stream is unusable after it.

    `head` is the header block (request/status line and headers, ending in
    CRLF) when it was complete, so the caller can answer a request with
    `status` and `reason`; None when even the headers did not fit.
    """

    status: int
    reason: str
    head: bytes | None


class StreamFramer:
    """Cuts a SIP byte stream into messages (RFC 3261 18.3), bounded by `max_size`."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.pings = 0
        """Double-CRLF keep-alive pings seen since the last `take_pings()`."""
        self._buffer = bytearray()
        self._crlf_run = 0
        self._failed = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def take_pings(self) -> int:
        pings, self.pings = self.pings, 0
        return pings

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Add bytes; return every complete message, and a FrameError last if one occurred."""
        if self._failed:
            return []
        self._buffer += data
        out: list[bytes | FrameError] = []
        while True:
            self._skip_keepalives()
            if not self._buffer:
                return out
            item = self._next_message()
            if item is None:
                return out
            out.append(item)
            if isinstance(item, FrameError):
                self._failed = True
                self._buffer.clear()
                return out

    def _skip_keepalives(self) -> None:
        skipped = 0
        while skipped < len(self._buffer) and self._buffer[skipped] in _CRLF_BYTES:
            skipped += 1
        if skipped:
            del self._buffer[:skipped]
            self._crlf_run += skipped
            self.pings += self._crlf_run // 4
            self._crlf_run %= 4
        if self._buffer:
            self._crlf_run = 0

    def _next_message(self) -> bytes | FrameError | None:
        end = self._buffer.find(_HEAD_END)
        if end < 0:
            if len(self._buffer) > self.max_size:
                return FrameError(413, "Message Too Large", None)
            return None
        head = bytes(self._buffer[: end + 2])
        length = content_length(head)
        if isinstance(length, FrameError):
            return length
        total = end + len(_HEAD_END) + length
        if total > self.max_size:
            return FrameError(413, "Message Too Large", head)
        if len(self._buffer) < total:
            return None
        message = bytes(self._buffer[:total])
        del self._buffer[:total]
        return message


def content_length(head: bytes) -> int | FrameError:
    """The one Content-Length of a header block (compact form `l` too, RFC 3261 20.14)."""
    values = set(_CONTENT_LENGTH.findall(b"\n" + head))
    if not values:
        return FrameError(400, "Missing Content-Length", head)
    if len(values) > 1 or not next(iter(values)).isdigit():
        return FrameError(400, "Bad Content-Length", head)
    return int(next(iter(values)))


def head_without_length(head: bytes) -> bytes:
    """A header block made parseable on its own: Content-Length removed, blank line added.

    Used to answer a message whose body was never read (too large): the
    answer needs only Via, From, To, Call-ID and CSeq.
    """
    return _CONTENT_LENGTH_LINE.sub(b"", head) + b"\r\n"


def address_key(host: str, port: int) -> tuple[str, int]:
    """Normalised (host, port) for the connection table: '[::1]' and '0::1' are '::1'."""
    address = ip_literal(host)
    return (address.compressed if address is not None else host.lower(), port)


MessageCallback = Callable[[bytes, tuple[str, int], "TcpConnection"], None]
FrameErrorCallback = Callable[[FrameError, "TcpConnection"], None]


class TcpConnection(asyncio.Protocol):
    """One TCP connection, inbound or outbound, with its framer and idle timer."""

    def __init__(self, owner: TcpTransport, conn_id: int) -> None:
        self.owner = owner
        self.conn_id = conn_id
        self.remote: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.framer = StreamFramer(owner.max_message_size)
        self.last_activity = owner.loop.time()
        self._transport: asyncio.Transport | None = None
        self._idle_handle: asyncio.TimerHandle | None = None

    # asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.remote = (str(peer[0]), int(peer[1]))
        self.local = (str(sock[0]), int(sock[1]))
        if len(self.owner.connections) >= self.owner.max_connections:
            log.warning(
                "TCP %s:%d refused: %d connections open", *self.remote, self.owner.max_connections
            )
            transport.abort()  # type: ignore[attr-defined]
            return
        self._transport = cast(asyncio.Transport, transport)
        self.owner._register(self)
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._touch()
        for item in self.framer.feed(data):
            if isinstance(item, FrameError):
                self.owner._frame_error(item, self)
                self.close()
                return
            self.owner._message(item, self)
        for _ in range(self.framer.take_pings()):
            self.write(b"\r\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        self.owner._unregister(self)

    # ours ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def write(self, data: bytes) -> None:
        if not self.is_open:
            return
        assert self._transport is not None
        self._touch()
        self._transport.write(data)
        if self._transport.get_write_buffer_size() > self.owner.max_write_buffer:
            # The peer stopped reading; queueing more would only grow memory.
            log.warning(
                "TCP %s:%d not reading (%d bytes queued); dropping the connection",
                *self.remote,
                self._transport.get_write_buffer_size(),
            )
            self._transport.abort()

    def close(self) -> None:
        """Close after flushing what was written (an answer before the close gets out)."""
        if self._transport is not None:
            self._transport.close()

    def _touch(self) -> None:
        self.last_activity = self.owner.loop.time()
        if self._idle_handle is None and self.owner.idle_timeout is not None:
            self._arm_idle(self.last_activity + self.owner.idle_timeout)

    def _arm_idle(self, when: float) -> None:
        self._idle_handle = self.owner.loop.call_at(when, self._idle_check)

    def _idle_check(self) -> None:
        # One handle per connection, re-armed lazily: activity only moves
        # `last_activity`, and the check re-arms for the remaining time.
        self._idle_handle = None
        timeout = self.owner.idle_timeout
        if timeout is None or not self.is_open:
            return
        expires = self.last_activity + timeout
        if self.owner.loop.time() >= expires:
            log.debug("TCP %s:%d idle for %.0f s; closing", *self.remote, timeout)
            self.close()
        else:
            self._arm_idle(expires)


class TcpTransport:
    """Every TCP server and connection of one endpoint, and the table that finds them."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: MessageCallback,
        on_frame_error: FrameErrorCallback,
        *,
        max_message_size: int,
        idle_timeout: float | None,
        connect_timeout: float = 10.0,
        max_connections: int = 1024,
        max_write_buffer: int = 1 << 20,
        on_closed: Callable[[TcpConnection], None] | None = None,
    ) -> None:
        self.loop = loop
        self.max_connections = max_connections
        """Inbound and outbound together; more are refused (a flood must not exhaust fds)."""
        self.max_write_buffer = max_write_buffer
        """Bytes queued for a peer that does not read before its connection is dropped."""
        self.on_closed = on_closed
        """Called once per connection that goes away (a flow a binding used is gone)."""
        self.max_message_size = max_message_size
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self._on_message = on_message
        self._on_frame_error = on_frame_error
        self._servers: list[asyncio.Server] = []
        self._by_id: dict[int, TcpConnection] = {}
        self._by_remote: dict[tuple[str, int], TcpConnection] = {}
        self._connecting: dict[tuple[str, int], asyncio.Task[TcpConnection | None]] = {}
        self._ids = itertools.count(1)

    @property
    def connections(self) -> list[TcpConnection]:
        return list(self._by_id.values())

    @property
    def local_addresses(self) -> list[tuple[str, int]]:
        out = []
        for server in self._servers:
            for sock in server.sockets:
                name = sock.getsockname()
                out.append((str(name[0]), int(name[1])))
        return out

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Start a server on host:port; returns the bound address. OSError on failure."""
        server = await self.loop.create_server(self._new_connection, host, port)
        self._servers.append(server)
        name = server.sockets[0].getsockname()
        return (str(name[0]), int(name[1]))

    def get(self, conn_id: object) -> TcpConnection | None:
        conn = self._by_id.get(conn_id) if isinstance(conn_id, int) else None
        return conn if conn is not None and conn.is_open else None

    def find(self, host: str, port: int) -> TcpConnection | None:
        conn = self._by_remote.get(address_key(host, port))
        return conn if conn is not None and conn.is_open else None

    def send(
        self,
        data: bytes,
        destination: tuple[str, int],
        conn_id: object = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        """Write on `conn_id` if open, else on the connection to `destination`, else connect.

        `on_error` runs when no connection can be made (RFC 3261 17.1.4: the
        transaction user treats it like a 503).
        """
        conn = self.get(conn_id) or self.find(*destination)
        if conn is not None:
            conn.write(data)
            return
        key = address_key(*destination)
        task = self._connecting.get(key)
        if task is None:
            task = self.loop.create_task(self._connect(key))
            self._connecting[key] = task
        task.add_done_callback(lambda t: _write_when_connected(t, data, key, on_error))

    async def _connect(self, key: tuple[str, int]) -> TcpConnection | None:
        try:
            _, protocol = await asyncio.wait_for(
                self.loop.create_connection(self._new_connection, key[0], key[1]),
                self.connect_timeout,
            )
            assert isinstance(protocol, TcpConnection)
            return protocol
        except OSError as exc:  # TimeoutError is an OSError
            log.info("TCP connect to %s:%d failed: %s", *key, exc or "timeout")
            return None
        finally:
            self._connecting.pop(key, None)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connecting.values()):
            task.cancel()
        for conn in list(self._by_id.values()):
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # called by TcpConnection -----------------------------------------------------

    def _new_connection(self) -> TcpConnection:
        return TcpConnection(self, next(self._ids))

    def _register(self, conn: TcpConnection) -> None:
        self._by_id[conn.conn_id] = conn
        self._by_remote[address_key(*conn.remote)] = conn

    def _unregister(self, conn: TcpConnection) -> None:
        if self._by_id.pop(conn.conn_id, None) is None:
            return
        key = address_key(*conn.remote)
        if self._by_remote.get(key) is conn:
            del self._by_remote[key]
        if self.on_closed is not None:
            try:
                self.on_closed(conn)
            except Exception:
                log.exception("TCP close handling for %s:%d failed", *conn.remote)

    def _message(self, data: bytes, conn: TcpConnection) -> None:
        try:
            self._on_message(data, conn.remote, conn)
        except Exception:  # one bad message must not kill the connection
            log.exception("TCP message from %s:%d failed", *conn.remote)

    def _frame_error(self, error: FrameError, conn: TcpConnection) -> None:
        try:
            self._on_frame_error(error, conn)
        except Exception:
            log.exception("TCP framing error handling for %s:%d failed", *conn.remote)


def _write_when_connected(
    task: asyncio.Task[TcpConnection | None],
    data: bytes,
    key: tuple[str, int],
    on_error: Callable[[], None] | None,
) -> None:
    if task.cancelled():
        return
    conn = task.result()
    if conn is None or not conn.is_open:
        log.debug("TCP %s:%d unreachable; dropped %d bytes", *key, len(data))
        if on_error is not None:
            on_error()
        return
    conn.write(data)
