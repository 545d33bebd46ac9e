"""The transport manager: every SIP listener and connection of the PBX.

`TransportManager` opens the UDP sockets and TCP servers a `Listen` config
asks for (IPv4 and IPv6, default 0.0.0.0:5060 on UDP and TCP), hands every
incoming message to ONE callback

    on_data(data: bytes, source: (host, port), transport: "UDP" | "TCP", conn_id)

and sends with `send(data, destination, transport, conn_id=None)`. `conn_id`
names the TCP connection a message came on. The connection table is also
keyed by remote (host, port), so a request sent to the source address a
contact registered from goes down that contact's connection even without the
id (RFC 3261 18.2.1, RFC 5626 5.3; `pbx.sip.transport.Flow` holds both).
Host names in destinations get a plain A/AAAA lookup here (no SRV: RFC 3263
is out of scope).

Messages over `max_message_size` never reach the core. A request whose Via,
From, To, Call-ID and CSeq can be read is answered 413 (RFC 3261 21.4.11) at
the address RFC 3261 18.2.2 / RFC 3581 5 pick; anything else is dropped. A
TCP connection is closed after the answer: its framing is lost.

`SipEndpoint` joins a manager, a sans-IO `pbx.sip.core.SipCore` and a
`TimerService`: bytes in -> `core.receive(..., now=loop.time())` -> outgoing
messages sent, events handed to ONE handler callable (the registrar/B2BUA
layer), the single timer handle re-armed. An optional `on_closed` callable
hears `ConnectionClosed` when a TCP connection goes away. The handler answers
through the endpoint's `send_*` methods, which feed the core and flush the
same way. A handler that raises on a request it has not answered yet has it
answered 500 (RFC 3261 21.5.1) and its traceback logged.

`new_event_loop()` gives a uvloop loop where uvloop exists, else asyncio's.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import secrets
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from pbx.auth_ban import AuthBans
from pbx.net.tcp import FrameError, TcpConnection, TcpTransport, head_without_length
from pbx.net.timers import TimerService
from pbx.net.udp import UdpListener, open_udp_listener
from pbx.sip.core import SipCore, server_error
from pbx.sip.errors import ParseError
from pbx.sip.events import Event, RequestReceived
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.transaction import ClientKey, TransactionKey
from pbx.sip.transport import (
    NextHop,
    ip_literal,
    response_next_hop,
    stamp_request,
    strip_brackets,
)

log = logging.getLogger(__name__)
trace = logging.getLogger("pbx.sip.trace")
"""Every SIP message in and out, at DEBUG (`deskpbx -v`)."""

DEFAULT_MAX_MESSAGE_SIZE = 65_535
"""Bytes; the largest UDP payload, and a generous bound for one message on TCP."""

TIMER_GRANULARITY = 0.01
"""Seconds: the SIP core's timers due within one such slot fire together (TimerService)."""

DEFAULT_IDLE_TIMEOUT = 600.0
"""Seconds without traffic before a TCP connection is closed (phones send CRLF pings)."""

SUPPORTED_TRANSPORTS = ("UDP", "TCP")

UdpLane = Callable[[bytes, tuple[str, int], float], "tuple[bytes, tuple[str, int], int] | None"]
"""(datagram, source, now) -> (answer bytes, destination, status) or None (see SipEndpoint)."""
DataCallback = Callable[[bytes, tuple[str, int], str, Hashable | None], None]
ErrorCallback = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Listen:
    """One listening address: host ("0.0.0.0", "::", "127.0.0.1"...), port, transports."""

    host: str = "0.0.0.0"
    port: int = 5060
    transports: tuple[str, ...] = SUPPORTED_TRANSPORTS


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """A TCP connection went away (peer closed, idle timeout, framing error, shutdown).

    A registrar drops or marks the bindings whose flow used `conn_id` (RFC 5626
    section 5.3: a binding reached over a dead flow is unreachable).
    """

    remote: tuple[str, int]
    transport: str
    conn_id: Hashable


class TransportError(Exception):
    """A transport could not be set up; the message is one line a user can act on."""


class ListenError(TransportError):
    """A listener could not bind (port in use, address not on this host, no permission)."""

    def __init__(self, transport: str, host: str, port: int, cause: OSError) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.cause = cause
        super().__init__(f"cannot listen on {transport} {_show(host, port)}: {_why(cause)}")


_ERRNO_TEXT = {
    errno.EADDRINUSE: "address already in use (another SIP server running?)",
    errno.EADDRNOTAVAIL: "address not available on this host",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def _why(exc: OSError) -> str:
    return _ERRNO_TEXT.get(exc.errno or 0) or exc.strerror or str(exc)


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop event loop where uvloop is installed (not on Windows), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def is_ipv6(host: str) -> bool:
    return ":" in host


@functools.lru_cache(maxsize=4096)
def _is_numeric(host: str) -> bool:
    """Whether `host` is an IP literal; remembered, as every response asks it of the same
    few peers (bounded: a flood of names cannot grow it)."""
    return ip_literal(host) is not None


class TransportManager:
    """All listeners and connections; one `on_data` in, one `send` out."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_data: DataCallback,
        listen: Sequence[Listen] = (Listen(),),
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        on_closed: Callable[[ConnectionClosed], None] | None = None,
        udp_receive_buffer: int = 0,
    ) -> None:
        self.loop = loop
        self.listen = tuple(listen)
        self.udp_receive_buffer = udp_receive_buffer
        """SO_RCVBUF bytes asked for on each UDP socket (0: the system's default)."""
        self._on_closed = on_closed
        self.max_message_size = max_message_size
        self._on_data = on_data
        self._udp: list[UdpListener] = []
        self._udp_routes: dict[str, UdpListener] = {}
        """Destination host -> the UDP listener _udp_for picked (bounded, see _udp_for)."""
        self.tcp = TcpTransport(
            loop,
            self._tcp_message,
            self._tcp_frame_error,
            max_message_size=max_message_size,
            idle_timeout=idle_timeout,
            on_closed=self._tcp_closed,
        )
        self.oversized = 0
        """Messages refused for size (answered or dropped)."""

    # --- life cycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Open every listener; on any failure close what opened and raise ListenError."""
        try:
            for item in self.listen:
                await self._open(item)
        except ListenError:
            await self.close()
            raise

    async def close(self) -> None:
        for listener in self._udp:
            listener.close()
        self._udp.clear()
        self._udp_routes.clear()
        await self.tcp.close()

    async def _open(self, item: Listen) -> None:
        transports = [t.upper() for t in item.transports]
        unknown = set(transports) - set(SUPPORTED_TRANSPORTS)
        if unknown:
            raise TransportError(f"unsupported transport {', '.join(sorted(unknown))}")
        # With port 0 UDP and TCP should still share one port (a Via names one
        # port for both); retry a few times when TCP finds UDP's pick taken.
        attempts = 5 if item.port == 0 and len(transports) > 1 else 1
        for attempt in range(attempts):
            try:
                await self._open_once(item.host, item.port, transports)
                return
            except ListenError as exc:
                if attempt == attempts - 1 or exc.cause.errno != errno.EADDRINUSE:
                    raise

    async def _open_once(self, host: str, port: int, transports: list[str]) -> None:
        opened: list[UdpListener] = []
        for transport in transports:
            try:
                if transport == "UDP":
                    listener = await open_udp_listener(
                        self.loop, host, port, self._datagram,
                        receive_buffer=self.udp_receive_buffer,
                    )  # fmt: skip
                    opened.append(listener)
                    port = listener.local_address[1]
                else:
                    port = (await self.tcp.listen(host, port))[1]
            except OSError as exc:
                for listener in opened:
                    listener.close()
                raise ListenError(transport, host, port, exc) from exc
        self._udp.extend(opened)
        self._udp_routes.clear()

    @property
    def addresses(self) -> dict[str, list[tuple[str, int]]]:
        """Bound addresses per transport (ports resolved when 0 was asked for)."""
        return {
            "UDP": [listener.local_address for listener in self._udp],
            "TCP": self.tcp.local_addresses,
        }

    @property
    def udp_receive_buffers(self) -> dict[tuple[str, int], int]:
        """Receive-buffer bytes the kernel granted, per UDP listener address."""
        return {listener.local_address: listener.receive_buffer for listener in self._udp}

    # --- sending --------------------------------------------------------------------

    def send(
        self,
        data: bytes,
        destination: tuple[str, int],
        transport: str,
        conn_id: Hashable | None = None,
        on_error: ErrorCallback | None = None,
    ) -> None:
        """Send one message; host names are looked up first (A/AAAA only).

        `on_error` runs (later, from the loop) when the message certainly
        cannot leave: no listener for the address family, name not found,
        TCP connection refused. UDP losses on the way are never reported.
        """
        transport = transport.upper()
        host = strip_brackets(destination[0])
        if transport == "TCP" and self.tcp.get(conn_id) is not None:
            self.tcp.send(data, (host, destination[1]), conn_id, on_error)
        elif _is_numeric(host):
            self._send_numeric(data, (host, destination[1]), transport, conn_id, on_error)
        else:
            self.loop.create_task(
                self._resolve_and_send(data, host, destination[1], transport, on_error)
            )

    def _send_numeric(
        self,
        data: bytes,
        destination: tuple[str, int],
        transport: str,
        conn_id: Hashable | None,
        on_error: ErrorCallback | None,
    ) -> None:
        if transport == "TCP":
            self.tcp.send(data, destination, conn_id, on_error)
            return
        listener = self._udp_for(destination[0]) if transport == "UDP" else None
        if listener is None:
            log.warning("no %s listener can reach %s; dropped", transport, _show(*destination))
            if on_error is not None:
                self.loop.call_soon(on_error)
            return
        listener.send(data, destination)

    async def _resolve_and_send(
        self, data: bytes, host: str, port: int, transport: str, on_error: ErrorCallback | None
    ) -> None:
        try:
            infos = await self.loop.getaddrinfo(host, port)
        except OSError as exc:
            log.info("cannot resolve %s: %s; dropped message", host, exc)
            infos = []
        families = {listener.family_is_ipv6 for listener in self._udp} or {False, True}
        for info in infos:
            address = str(info[4][0])
            if transport != "UDP" or is_ipv6(address) in families:
                self._send_numeric(data, (address, port), transport, None, on_error)
                return
        log.info("no address of %s is reachable over %s", host, transport)
        if on_error is not None:
            on_error()

    def _udp_for(self, host: str) -> UdpListener | None:
        """The UDP listener to send to `host` from; the pick is remembered per host while
        that listener stays open (the choice depends only on the host and the listeners)."""
        listener = self._udp_routes.get(host)
        if listener is not None and listener.is_open:
            return listener
        listener = self._pick_udp(host)
        if listener is not None:
            if len(self._udp_routes) >= 4096:
                self._udp_routes.clear()
            self._udp_routes[host] = listener
        return listener

    def _pick_udp(self, host: str) -> UdpListener | None:
        wanted = is_ipv6(host)
        loopback = _is_loopback(host)
        candidates = [u for u in self._udp if u.is_open and u.family_is_ipv6 == wanted]
        # Prefer a socket bound to the wildcard or matching the loopback-ness of the peer.
        for listener in candidates:
            if _is_loopback(listener.local_address[0]) == loopback or _is_wildcard(
                listener.local_address[0]
            ):
                return listener
        return candidates[0] if candidates else None

    # --- receiving ------------------------------------------------------------------

    def _datagram(self, data: bytes, source: tuple[str, int]) -> None:
        if len(data) > self.max_message_size:
            self.oversized += 1
            self._answer_refused(data, source, "UDP", None, 413, None)
            return
        self._on_data(data, source, "UDP", None)

    def _tcp_message(self, data: bytes, source: tuple[str, int], conn: TcpConnection) -> None:
        self._on_data(data, source, "TCP", conn.conn_id)

    def _tcp_closed(self, conn: TcpConnection) -> None:
        if self._on_closed is not None:
            self._on_closed(ConnectionClosed(conn.remote, "TCP", conn.conn_id))

    def _tcp_frame_error(self, error: FrameError, conn: TcpConnection) -> None:
        if error.status == 413:
            self.oversized += 1
        if error.head is None:
            log.info(
                "TCP %s: %s before the headers ended; closing", _show(*conn.remote), error.reason
            )
            return
        reason = None if error.status == 413 else error.reason
        self._answer_refused(
            head_without_length(error.head), conn.remote, "TCP", conn.conn_id, error.status, reason
        )

    def _answer_refused(
        self,
        data: bytes,
        source: tuple[str, int],
        transport: str,
        conn_id: Hashable | None,
        status: int,
        reason: str | None,
    ) -> None:
        """Answer a request the core never sees (too large, unframeable); drop anything else."""
        try:
            request = parse_message(data)
            if not isinstance(request, Request) or request.method == "ACK":
                return
            stamp_request(request, source)
            response = request.make_response(status, reason, to_tag=secrets.token_hex(4))
            hop = response_next_hop(response.via, conn_id)
            payload = bytes(response)
        except ParseError as exc:
            log.info(
                "%s message from %s refused (%d) and unreadable (%s); dropped",
                transport,
                _show(*source),
                status,
                exc.reason,
            )
            return
        log.info("%s %s from %s refused: %d", transport, request.method, _show(*source), status)
        self.send(payload, hop.address, hop.transport, hop.conn_id)


def _is_loopback(host: str) -> bool:
    address = ip_literal(host)
    return address is not None and address.is_loopback


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::")


class SipEndpoint:
    """Listeners + SIP core + timer service; events go to one handler (aioquic style).

    Requests that start a server transaction get Via `received`/`rport` stamped
    (RFC 3261 18.2.1, RFC 3581 4) so every response carries the stamped Via back
    (the TU learns where any request came from from the event's `source`). The
    core stamps the message it parses, so the endpoint passes the bytes on untouched.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        core: SipCore,
        handler: Callable[[Event], None],
        listen: Sequence[Listen] = (Listen(),),
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        on_closed: Callable[[ConnectionClosed], None] | None = None,
        udp_receive_buffer: int = 0,
    ) -> None:
        self.loop = loop
        self.core = core
        self.handler = handler
        self.on_closed = on_closed
        self.transports = TransportManager(
            loop,
            self._data,
            listen,
            max_message_size=max_message_size,
            idle_timeout=idle_timeout,
            on_closed=self._closed,
            udp_receive_buffer=udp_receive_buffer,
        )
        self.timers = TimerService(loop, core, after_fire=self.flush, granularity=TIMER_GRANULARITY)
        self.on_response_sent: Callable[[int], None] | None = None
        """Observer of each response status the TU sends (the API's metrics)."""
        self.udp_lane: UdpLane | None = None
        """Answers some UDP datagrams before the core sees them (pbx.registrar_lane);
        None from it hands the datagram to the core as usual."""
        self.bans: AuthBans | None = None
        """Addresses whose messages are dropped unread (pbx.auth_ban); None: no bans."""
        self._flushing = False

    async def start(self) -> None:
        await self.transports.start()

    async def close(self) -> None:
        self.timers.close()
        await self.transports.close()

    @property
    def addresses(self) -> dict[str, list[tuple[str, int]]]:
        return self.transports.addresses

    def now(self) -> float:
        """The loop's monotonic clock, the only time the core is ever given."""
        return self.loop.time()

    # --- the TU's side --------------------------------------------------------------

    def send_request(self, request: Request, hop: NextHop) -> ClientKey:
        """Start a client transaction towards `hop` (see pbx.sip.transport.request_next_hop)."""
        key = self.core.send_request(request, hop.address, hop.transport, self.now())
        self.flush()
        return key

    def send_response(self, tx: TransactionKey, response: Response) -> None:
        self.core.send_response(tx, response, self.now())
        if self.on_response_sent is not None:
            self.on_response_sent(response.status)
        self.flush()

    def send_stateless(self, message: Request | Response, hop: NextHop) -> None:
        self.core.send_stateless(message, hop.address, hop.transport)
        self.flush()

    def cancel(self, tx: ClientKey, reason: str | None = None) -> bool:
        sent = self.core.cancel(tx, self.now(), reason)
        self.flush()
        return sent

    # --- plumbing -------------------------------------------------------------------

    def _data(
        self, data: bytes, source: tuple[str, int], transport: str, conn_id: Hashable | None
    ) -> None:
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug("<<< %s %s:%s\n%s", transport, *source[:2], _printable(data))
        now = self.now()
        if self.bans is not None and self.bans.drop(source[0], now):  # one dict test if none
            if transport != "UDP":  # a banned client's connection is closed, not kept open
                connection = self.transports.tcp.get(conn_id)
                if connection is not None:
                    connection.close()
            return
        if self.udp_lane is not None and transport == "UDP":
            answer = self.udp_lane(data, source, now)
            if answer is not None:
                self._send_lane_answer(*answer)
                return
        self.core.receive(data, source, transport, now)
        self.flush()

    def _send_lane_answer(self, data: bytes, destination: tuple[str, int], status: int) -> None:
        """Send what the lane answered, traced and counted as the core's answer would be
        (status 0: a resent answer, which the metrics do not count again)."""
        if trace.isEnabledFor(logging.DEBUG):
            trace.debug(">>> UDP %s:%s\n%s", *destination[:2], _printable(data))
        self.transports.send(data, destination, "UDP")
        if status and self.on_response_sent is not None:
            self.on_response_sent(status)

    def _closed(self, event: ConnectionClosed) -> None:
        if self.on_closed is None:
            return
        try:
            self.on_closed(event)
        except Exception:
            log.exception("connection-closed handler failed on %r", event)
        self.flush()

    def flush(self) -> None:
        """Hand the core's events to the handler, send what the core queued, re-arm the timer.

        Events go first: a TU that answers a new INVITE at once (a 407 challenge, a 404)
        does so before the core's queue is drained, so the core drops the 100 Trying it
        would otherwise send (RFC 3261 17.2.1); everything queued still leaves in order.
        Re-entrant: a handler that answers from inside `handler(event)` calls
        back into `flush`, which returns at once; the outer loop picks the new
        messages up.
        """
        if self._flushing:
            return
        self._flushing = True
        try:
            while True:
                events = self.core.pop_events()
                for event in events:
                    try:
                        self.handler(event)
                    except Exception:  # the TU's bug must not wedge the endpoint
                        log.exception("event handler failed on %r", event)
                        self._answer_failed(event)
                outgoing = self.core.pop_outgoing()
                if not outgoing and not events:
                    break
                for out in outgoing:
                    if trace.isEnabledFor(logging.DEBUG):
                        trace.debug(
                            ">>> %s %s:%s\n%s", out.transport, *out.destination[:2],
                            _printable(out.data),
                        )  # fmt: skip
                    self.transports.send(
                        out.data,
                        out.destination,
                        out.transport,
                        on_error=self._error_callback(out.tx),
                    )
        finally:
            self._flushing = False
        self.timers.rearm()

    def _answer_failed(self, event: Event) -> None:
        """500 for a request the handler raised on before answering it (RFC 3261 21.5.1), so
        the phone is not left retransmitting until its transaction times out. ACK gets none."""
        if not isinstance(event, RequestReceived) or event.tx is None:
            return
        if event.request.method == "ACK" or not self.core.awaits_final(event.tx):
            return
        try:
            self.send_response(event.tx, server_error(event.request))
        except Exception:
            log.exception("could not answer 500 to %r", event)

    def _error_callback(self, tx: TransactionKey | None) -> ErrorCallback | None:
        if tx is None:
            return None

        def report() -> None:
            self.core.transport_error(tx, self.now())
            self.flush()

        return report


def _printable(data: bytes) -> str:
    return data.decode("utf-8", "replace").rstrip("\r\n")


def stamped_bytes(data: bytes, source: tuple[str, int]) -> bytes:
    """`data` with its top Via stamped for `source` when it is a request that needs it
    (the byte-level form of what SipCore.receive does to the message it parses).

    Unparseable data and responses come back unchanged (the core rejects or
    matches them); so does a request whose Via needs no change.
    """
    try:
        message = parse_message(data)
        if isinstance(message, Request) and stamp_request(message, source):
            return bytes(message)
    except ParseError:
        pass
    return data
