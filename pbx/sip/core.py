"""The sans-IO SIP core: parses datagrams, owns the transaction table, runs the timers.

Theory of operation (RFC 3261 sections 8.2, 17, 18; RFC 6026)
--------------------------------------------------------------
`SipCore` does no I/O and reads no clock (the aioquic pattern). The asyncio
shell feeds it and drains it:

    core = SipCore(TimerConfig(t1=0.5, t2=4.0, t4=5.0))
    core.receive(data, source, "UDP", now)     # bytes from the wire
    for out in core.pop_outgoing(): sock.sendto(out.data, out.destination)
    for event in core.pop_events(): tu.handle(event)   # RequestReceived, ...
    loop.call_at(core.next_deadline(), ...)    # then core.handle_timers(now)

The core stamps `received`/`rport` on the top Via of each request that starts a
server transaction (pbx.sip.transport.stamp_request, RFC 3261 18.2.1, RFC 3581);
responses then go where `response_destination` says (18.2.2). An ACK and a
retransmission, which get no response of their own, are matched on the Via as
it came (their branch and sent-by do not change with the stamp), except from
RFC 2543 peers, whose key holds the whole stamped top Via. Incoming requests are matched
to server transactions (17.2.3: branch, sent-by and method; RFC 2543 peers
without a usable magic cookie on Request-URI, tags, Call-ID, CSeq and top
Via). A retransmission is absorbed (or answered with the last response) by
its transaction; a new request makes a transaction and a `RequestReceived`
event. ACK never makes one: an ACK for a 300-699 is absorbed
by the INVITE transaction, an ACK for a 2xx goes to the TU (tx=None, or the
INVITE's key while it is Accepted, RFC 6026 7.1). Responses are matched to
client transactions on branch and CSeq method (17.1.3); unmatched ones reach
the TU with tx=None (a 2xx retransmission after the transaction ended). A
request that cannot be parsed gets a stateless 400 (ParseError.status and
.reason) when its Via was readable (8.2, RFC 4475); a bad response is dropped
(18.1.2). Both are reported as `MessageRejected`.

The TU answers with `send_response(tx, response, now)`, starts requests with
`send_request(request, destination, transport, now)` (a branch is added to
the top Via when it has none with the magic cookie), and sends what has no
transaction (the ACK for a 2xx, 13.2.2.4) with `send_stateless`.

CANCEL (9.1) is built here: `cancel(tx, now)` on a client INVITE sends a
CANCEL as its own non-INVITE client transaction, keyed ClientKey(branch,
"CANCEL"), as soon as a provisional response has arrived. At the UAS,
`invite_for_cancel(key)` finds the INVITE a received CANCEL names and
`cancel_target(key, now)` the server transaction of any method it names (9.2),
also one answered outside the table by a keeper (`add_answer_keeper`: the
REGISTER lane keeps its answers for 64*T1 itself).

Timers live in one TimerHeap (pbx.sip.timers: FIFO lanes and a heap) so
`next_deadline()` is cheap. Zero-length timers (D, I, J, K on reliable
transports) fire before the entry point returns, so those transactions are gone
at once. Each outgoing message names its transaction; the shell reports a
failed send with `transport_error(tx, now)` and the TU hears
`TransportErrorOccurred` (17.1.4). `transaction_count` and `dump(now)` list
what is alive, for leak checks.

What is left to the TU, as RFC 3261 leaves it: a server transaction waits in
Trying/Proceeding for the TU's final answer with no timer, and a client INVITE
in Proceeding waits for its final answer until the TU cancels (then 64*T1).
The 18.1.2 check that a response's top Via names us is the shell's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from pbx.sip.entropy import token_hex
from pbx.sip.errors import LocalProtocolError, ParseError
from pbx.sip.events import (
    Event,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from pbx.sip.headers import Via
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.stateless_errors import error_response, header_lines
from pbx.sip.timers import TimerConfig, TimerHeap, TimerName
from pbx.sip.transaction import (
    Action,
    ArmTimer,
    CancelTimer,
    ClientKey,
    Input,
    LegacyServerKey,
    OfferTrying,
    PassUp,
    ReportTimeout,
    ReportTransportError,
    SendCancel,
    ServerKey,
    State,
    Terminate,
    Transaction,
    TransactionKey,
    Transmit,
    build_cancel,
    client_key,
    is_rfc3261_branch,
    received_input,
    sent_input,
    server_key,
    timer_input,
)
from pbx.sip.transaction_client import ClientInviteTransaction, ClientNonInviteTransaction
from pbx.sip.transaction_server import (
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    trying,
)
from pbx.sip.transport import stamp_parsed

RELIABLE = frozenset({"TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"})
"""Transports that retransmit for us: timers A, E, G are not armed (17.1.1.2)."""

MAX_SERVER_METHODS = 64
"""Methods remembered for CANCEL matching (9.2); a flood of invented ones stops there."""

AnswerKeeper = Callable[[ServerKey, float], "ServerKey | None"]
"""(CANCEL's key, now) -> the key of a request answered and still kept outside the
transaction table that the CANCEL names (same branch and sent-by), or None."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for the shell to send; `tx` names its transaction (None: stateless)."""

    data: bytes
    destination: tuple[str, int]
    transport: str
    tx: TransactionKey | None = None


@dataclass(frozen=True, slots=True)
class TransactionInfo:
    """One line of the debug dump: what is alive and when its timers fire."""

    key: TransactionKey
    role: str
    method: str
    state: str
    timers: dict[str, float]


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 64 random bits (8.1.1.7)."""
    return "z9hG4bK" + token_hex(8)


def new_tag() -> str:
    """A fresh To tag for stateless replies (19.3: at least 32 random bits)."""
    return token_hex(6)


def same_request(datagram: bytes, length: int, branch: str) -> bool:
    """Whether `datagram`, whose hash matched that of a request already handled (`length`
    bytes, top Via `branch`), is that request again: a retransmission sends the same
    bytes (17.1.1.2, 17.1.2.2), so the length and the branch must be there too; anything
    else is parsed as a request of its own."""
    return len(datagram) == length and branch.encode() in datagram


def server_error(request: Request) -> Response:
    """500 (21.5.1) for a request its handler failed on, with a To tag of ours when the
    request is outside a dialog (8.2.6.2)."""
    tag = new_tag() if request.to_tag is None else None
    return request.make_response(500, "Server Internal Error", to_tag=tag)


def response_destination(via: Via, source: tuple[str, int], transport: str) -> tuple[str, int]:
    """Where a response to a request with top Via `via` goes (18.2.2, RFC 3581 section 4).

    Reliable: back to the source (the shell reuses the connection). maddr:
    there. rport: the source address and port. Otherwise the source address
    (what `received` would say) at the sent-by port.
    """
    if transport.upper() in RELIABLE:
        return source
    if via.maddr:
        return (via.maddr, via.port or 5060)
    if via.rport is not None:
        return source
    return (via.received or source[0], via.port or 5060)


class SipCore:
    """All transactions of one SIP endpoint, with no I/O (see the module docstring)."""

    def __init__(
        self,
        timers: TimerConfig | None = None,
        *,
        branch_factory: Callable[[], str] = new_branch,
        tag_factory: Callable[[], str] = new_tag,
    ) -> None:
        self.config = timers or TimerConfig()
        self._new_branch = branch_factory
        self._new_tag = tag_factory
        self._transactions: dict[TransactionKey, Transaction] = {}
        self._heap = TimerHeap()
        self._outgoing: list[Outgoing] = []
        self._events: list[Event] = []
        self._trying: list[Transaction] = []  # new INVITEs whose 100 waits for pop_outgoing
        self._server_methods: set[str] = set()  # methods of server transactions, for 9.2
        self._keepers: list[AnswerKeeper] = []
        self._cancel_reasons: dict[TransactionKey, str] = {}
        """Reason headers (RFC 3326) for CANCELs still waiting for a provisional (9.1)."""
        self._fingerprints: dict[int, tuple[ServerKey, int]] = {}
        """hash(request datagram) -> (its server transaction's key, its length), for UDP
        requests with an RFC 3261 branch: see `_resent`."""
        self._fingerprint_of: dict[TransactionKey, int] = {}
        self.resent_unparsed = 0
        self._handlers: dict[type, Callable[[Transaction, Action, tuple[str, int], float], None]]
        self._handlers = {
            Transmit: self._on_transmit,
            PassUp: self._on_pass_up,
            ArmTimer: self._on_arm,
            CancelTimer: lambda tx, action, source, now: None,  # lazy: the heap skips it
            ReportTimeout: self._on_timeout,
            ReportTransportError: self._on_transport_error,
            SendCancel: self._on_send_cancel,
            OfferTrying: self._on_offer_trying,
            Terminate: self._on_terminate,
        }

    # ------------------------------------------------------------ draining

    def pop_outgoing(self) -> list[Outgoing]:
        """What to send, in order; first the 100 Trying of each new INVITE the TU has not
        answered yet (17.2.1: a TU that answered before this call needed none)."""
        if self._trying:
            self._release_trying()
        out, self._outgoing = self._outgoing, []
        return out

    def _release_trying(self) -> None:
        pending, self._trying = self._trying, []
        queued, self._outgoing = self._outgoing, []
        for tx in pending:
            response = trying(tx)
            if response is not None:
                self._outgoing.append(Outgoing(bytes(response), tx.destination, tx.transport,
                                               tx.key))  # fmt: skip
        self._outgoing += queued

    def pop_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------ from the wire

    def receive(self, data: bytes, source: tuple[str, int], transport: str, now: float) -> None:
        """Take one datagram (or one framed stream message) that arrived from `source`."""
        transport = transport.upper()
        datagram = data if transport == "UDP" else None
        if datagram is not None and self._fingerprints and self._resent(datagram, source, now):
            return
        try:
            message = parse_message(data)
        except ParseError as exc:
            self._reject_bytes(data, exc, source, transport)
            return
        if isinstance(message, Request):
            self._receive_request(message, source, transport, now, datagram)
        else:
            self._receive_response(message, source, transport, now)
        self.handle_timers(now)

    def _resent(self, datagram: bytes, source: tuple[str, int], now: float) -> bool:
        """A retransmission (17.1.2.2, 17.1.1.2: the same bytes again) of the request of a
        live server transaction, handled as such without being parsed: what the transaction
        does with a retransmitted request needs nothing from it (17.2.1, 17.2.2). The
        length and the branch must match too; anything else is parsed as usual."""
        seen = self._fingerprints.get(hash(datagram))
        if seen is None:
            return False
        key, length = seen
        tx = self._transactions.get(key)
        if tx is None or not same_request(datagram, length, key.branch):
            return False
        self.resent_unparsed += 1
        self._apply(tx, tx.handle(Input.REQUEST, now, None), source, now)
        self.handle_timers(now)
        return True

    def _receive_request(
        self,
        request: Request,
        source: tuple[str, int],
        transport: str,
        now: float,
        datagram: bytes | None = None,
    ) -> None:
        try:
            _check_request(request)
            legacy = not is_rfc3261_branch(request.via.branch)
            if legacy:  # the key holds the whole top Via: stamped, as the INVITE's was
                stamp_parsed(request, source)  # 18.2.1, RFC 3581 4: on the parsed message
            key = server_key(request)
        except ParseError as exc:
            self._reject_request(request, exc, source, transport)
            return
        if request.method == "ACK":
            self._receive_ack(request, key, source, transport, now)
            return
        tx = self._transactions.get(key)
        if tx is not None:
            self._apply(tx, tx.handle(Input.REQUEST, now, request), source, now)
            return
        if not legacy:
            # Stamped only now: `received`/`rport` serve the responses (18.2.2), which come
            # from the transaction's first request; an ACK or a retransmission gets none.
            try:
                stamp_parsed(request, source)
            except ParseError as exc:
                self._reject_request(request, exc, source, transport)
                return
        methods = self._server_methods
        if request.method not in methods and len(methods) < MAX_SERVER_METHODS:
            methods.add(request.method)
        cls = ServerInviteTransaction if request.method == "INVITE" else ServerNonInviteTransaction
        destination = response_destination(request.via, source, transport)
        tx = cls(key, request, destination, transport, transport in RELIABLE, self.config)
        if key.__class__ is LegacyServerKey:
            tx.to_tags = frozenset((request.to_tag,))
        self._transactions[key] = tx
        if datagram is not None and key.__class__ is ServerKey:  # retransmissions: no parse
            fingerprint = hash(datagram)
            self._fingerprints[fingerprint] = (key, len(datagram))
            self._fingerprint_of[key] = fingerprint
        self._apply(tx, tx.start(now), source, now)

    def _receive_ack(
        self,
        ack: Request,
        key: ServerKey | LegacyServerKey,
        source: tuple[str, int],
        transport: str,
        now: float,
    ) -> None:
        tx = self._find_acked_invite(ack, key)
        if tx is None:
            self._events.append(RequestReceived(ack, None, source, transport))
            return
        self._apply(tx, tx.handle(Input.ACK, now, ack), source, now)

    def _find_acked_invite(
        self, ack: Request, key: ServerKey | LegacyServerKey
    ) -> Transaction | None:
        """17.2.3: the INVITE server transaction an ACK belongs to, if any.

        RFC 2543 matching: the ACK's To tag is the one our response added, so an
        INVITE that had no To tag is looked up without it and the tag checked.
        """
        tx = self._transactions.get(key)
        if tx is None and isinstance(key, LegacyServerKey) and key.to_tag is not None:
            tx = self._transactions.get(key._replace(to_tag=None))
            if tx is not None and key.to_tag not in tx.to_tags:
                tx = None
        if isinstance(tx, ServerInviteTransaction):
            return tx
        return None

    def _receive_response(
        self, response: Response, source: tuple[str, int], transport: str, now: float
    ) -> None:
        try:
            key = client_key(response)
        except ParseError as exc:
            self._events.append(MessageRejected(source, transport, exc.status, exc.reason, False))
            return
        tx = self._transactions.get(key)
        if tx is None or not tx.is_client:
            self._events.append(ResponseReceived(response, None, source, transport))
            return
        if not 100 <= response.status <= 699:
            self._events.append(MessageRejected(source, transport, 400, "Bad status", False))
            return
        self._apply(tx, tx.handle(received_input(response.status), now, response), source, now)

    # ------------------------------------------------------------ from the TU

    def send_request(
        self, request: Request, destination: tuple[str, int], transport: str, now: float
    ) -> ClientKey:
        """Start a client transaction for `request` and queue its first transmission.

        The top Via must name us (sent-by); a branch with the magic cookie is
        added when missing. ACK has no client transaction: use send_stateless.
        """
        if request.method == "ACK":
            raise LocalProtocolError("ACK starts no transaction: use send_stateless")
        if request.cseq.method != request.method:
            raise LocalProtocolError(f"CSeq method {request.cseq.method} is not {request.method}")
        self._ensure_branch(request)
        key = client_key(request)
        if key in self._transactions:
            raise LocalProtocolError(f"a client transaction {key} already exists")
        transport = transport.upper()
        cls = ClientInviteTransaction if request.method == "INVITE" else ClientNonInviteTransaction
        tx = cls(key, request, destination, transport, transport in RELIABLE, self.config)
        self._transactions[key] = tx
        self._apply(tx, tx.start(now), destination, now)
        self.handle_timers(now)
        return key

    def send_response(self, tx_key: TransactionKey, response: Response, now: float) -> None:
        """Send `response` through server transaction `tx_key` (17.2.1, 17.2.2).

        After a 2xx to an INVITE the transaction is Accepted (RFC 6026): the TU
        retransmits that 2xx through here until the ACK comes (13.3.1.4); once
        Timer L has ended the transaction this raises LocalProtocolError.
        """
        tx = self._transactions.get(tx_key)
        if tx is None or tx.is_client:
            raise LocalProtocolError(f"no live server transaction {tx_key}")
        event = sent_input(response.status)
        if isinstance(tx_key, LegacyServerKey):
            tx.to_tags = tx.to_tags | {response.to_tag}
        self._apply(tx, tx.handle(event, now, response), tx.destination, now)
        self.handle_timers(now)

    def send_stateless(
        self, message: Request | Response, destination: tuple[str, int], transport: str
    ) -> None:
        """Queue `message` outside any transaction (the ACK for a 2xx, 2xx retransmissions)."""
        self._outgoing.append(Outgoing(bytes(message), destination, transport.upper()))

    def cancel(self, tx_key: ClientKey, now: float, reason: str | None = None) -> bool:
        """Cancel the INVITE of client transaction `tx_key` (9.1), with a Reason header
        (RFC 3326) when `reason` is given.

        The CANCEL goes out at once if a provisional response has arrived, or
        when the first one does. Returns False when there is nothing left to
        cancel (no such transaction, or a final response already came).
        """
        tx = self._transactions.get(tx_key)
        if not isinstance(tx, ClientInviteTransaction):
            return False
        if tx.state not in (State.CALLING, State.PROCEEDING):
            return False
        if reason:
            self._cancel_reasons[tx_key] = reason
        self._apply(tx, tx.handle(Input.CANCEL, now), tx.destination, now)
        self.handle_timers(now)
        return True

    def invite_for_cancel(self, cancel_key: TransactionKey) -> TransactionKey | None:
        """The live INVITE server transaction a received CANCEL names (9.2), if any."""
        if not isinstance(cancel_key, ServerKey | LegacyServerKey):
            return None
        key = cancel_key._replace(method="INVITE")
        tx = self._transactions.get(key)
        return key if isinstance(tx, ServerInviteTransaction) else None

    def cancel_target(self, cancel_key: TransactionKey, now: float) -> TransactionKey | None:
        """The server transaction a received CANCEL names, of any method (9.2), or None.

        The CANCEL matches like any request (17.2.3) except for the method; an INVITE is
        looked at first. A non-INVITE one (a REGISTER in Completed, Timer J) matches as
        well: the TU answers such a CANCEL 200 and nothing else happens. Requests a keeper
        answered outside the table (`add_answer_keeper`) count as long as it keeps them.
        """
        if not isinstance(cancel_key, ServerKey | LegacyServerKey):
            return None
        invite = self.invite_for_cancel(cancel_key)
        if invite is not None:
            return invite
        for method in self._server_methods - _NOT_CANCELLED:
            key = cancel_key._replace(method=method)
            tx = self._transactions.get(key)
            if tx is not None and not tx.is_client:
                return key
        if isinstance(cancel_key, ServerKey):
            for keeper in self._keepers:
                kept = keeper(cancel_key, now)
                if kept is not None:
                    return kept
        return None

    def add_answer_keeper(self, keeper: AnswerKeeper) -> None:
        """Let `cancel_target` see requests answered outside the transaction table."""
        self._keepers.append(keeper)

    def awaits_final(self, tx_key: TransactionKey) -> bool:
        """Whether server transaction `tx_key` is alive and has sent no final response yet
        (the shell answers 500 for a TU that failed on its request, 21.5.1)."""
        tx = self._transactions.get(tx_key)
        return tx is not None and not tx.is_client and tx.state in _AWAITING_FINAL

    def transport_error(self, tx_key: TransactionKey | None, now: float) -> None:
        """The shell could not send a message of `tx_key` (17.1.4, 17.2.4)."""
        tx = self._transactions.get(tx_key) if tx_key is not None else None
        if tx is None:
            return
        self._apply(tx, tx.handle(Input.TRANSPORT_ERROR, now), tx.destination, now)
        self.handle_timers(now)

    # ------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """When `handle_timers` must next be called (monotonic seconds), or None."""
        self._heap.drop_stale(self._is_live)
        return self._heap.peek()

    def handle_timers(self, now: float) -> None:
        """Fire every timer due at `now`, in deadline order."""
        while (entry := self._heap.pop_due(now)) is not None:
            deadline, key, name = entry
            tx = self._transactions.get(key)  # type: ignore[call-overload]
            if tx is None or tx.timers.get(name) != deadline:
                continue
            self._apply(tx, tx.handle(timer_input(name), now), tx.destination, now)

    def _is_live(self, deadline: float, key: Hashable, name: TimerName) -> bool:
        tx = self._transactions.get(key)  # type: ignore[call-overload]
        return tx is not None and tx.timers.get(name) == deadline

    # ------------------------------------------------------------ introspection

    def has_transaction(self, key: TransactionKey) -> bool:
        """Whether a transaction with this key is alive (a request matching it is its own)."""
        return key in self._transactions

    @property
    def transaction_count(self) -> int:
        return len(self._transactions)

    def transaction_state(self, tx_key: TransactionKey) -> State | None:
        tx = self._transactions.get(tx_key)
        return None if tx is None else tx.state

    def dump(self, now: float) -> list[TransactionInfo]:
        """Every live transaction: role, method, state and seconds left on each timer."""
        return [
            TransactionInfo(
                key,
                "client" if tx.is_client else "server",
                tx.method,
                tx.state.value,
                tx.time_left(now),
            )  # fmt: skip
            for key, tx in self._transactions.items()
        ]

    # ------------------------------------------------------------ carrying out actions

    def _apply(
        self, tx: Transaction, actions: Iterable[Action], source: tuple[str, int], now: float
    ) -> None:
        for action in actions:
            self._handlers[type(action)](tx, action, source, now)

    def _on_transmit(
        self, tx: Transaction, action: Action, source: tuple[str, int], now: float
    ) -> None:
        assert isinstance(action, Transmit)
        message = action.message
        data = message if isinstance(message, bytes) else bytes(message)
        self._outgoing.append(Outgoing(data, tx.destination, tx.transport, tx.key))

    def _on_pass_up(
        self, tx: Transaction, action: Action, source: tuple[str, int], now: float
    ) -> None:
        assert isinstance(action, PassUp)
        message = action.message
        if isinstance(message, Request):
            self._events.append(RequestReceived(message, tx.key, source, tx.transport))
        else:
            assert isinstance(tx.key, ClientKey)
            self._events.append(ResponseReceived(message, tx.key, source, tx.transport))

    def _on_arm(self, tx: Transaction, action: Action, source: tuple[str, int], now: float) -> None:
        assert isinstance(action, ArmTimer)
        self._heap.push(action.deadline, tx.key, action.name)

    def _on_timeout(
        self, tx: Transaction, action: Action, source: tuple[str, int], now: float
    ) -> None:
        assert isinstance(action, ReportTimeout)
        self._events.append(TransactionTimedOut(tx.key, tx.method, action.timer))

    def _on_transport_error(
        self, tx: Transaction, action: Action, source: tuple[str, int], now: float
    ) -> None:
        self._events.append(TransportErrorOccurred(tx.key, tx.method))

    def _on_send_cancel(
        self, tx: Transaction, action: Action, source: tuple[str, int], now: float
    ) -> None:
        cancel = build_cancel(tx.request, self._cancel_reasons.pop(tx.key, None))
        key = client_key(cancel)
        if key in self._transactions:
            return
        ctx = ClientNonInviteTransaction(
            key, cancel, tx.destination, tx.transport, tx.reliable, self.config
        )
        self._transactions[key] = ctx
        self._apply(ctx, ctx.start(now), tx.destination, now)

    def _on_offer_trying(
        self, tx: Transaction, action: Action, source: tuple[str, int], now: float
    ) -> None:
        self._trying.append(tx)

    def _on_terminate(
        self, tx: Transaction, action: Action, source: tuple[str, int], now: float
    ) -> None:
        if self._transactions.get(tx.key) is tx:
            del self._transactions[tx.key]
            if self._cancel_reasons:  # a CANCEL that never went out (no 1xx came)
                self._cancel_reasons.pop(tx.key, None)
            fingerprint = self._fingerprint_of.pop(tx.key, None)
            if fingerprint is not None:
                self._forget_fingerprint(fingerprint, tx.key)

    def _forget_fingerprint(self, fingerprint: int, key: TransactionKey) -> None:
        """Drop the fingerprint of an ended transaction, unless a colliding datagram's
        transaction has taken it since (that one's retransmissions are just parsed)."""
        seen = self._fingerprints.get(fingerprint)
        if seen is not None and seen[0] == key:
            del self._fingerprints[fingerprint]

    # ------------------------------------------------------------ helpers

    def _ensure_branch(self, request: Request) -> None:
        """8.1.1.7: our requests carry a unique branch with the magic cookie."""
        if "Via" not in request.headers:
            raise LocalProtocolError("a request needs a top Via naming us before it is sent")
        top = request.via  # parsed once: client_key() reads the same value next
        if is_rfc3261_branch(top.branch):
            return
        vias = request.headers.getall("Via")
        vias[0] = str(dataclasses.replace(top, params={**top.params, "branch": self._new_branch()}))
        request.headers.set("Via", ", ".join(vias))

    def _reject_bytes(
        self, data: bytes, exc: ParseError, source: tuple[str, int], transport: str
    ) -> None:
        """8.2 / RFC 4475: answer an unparsable request statelessly when its Via is readable."""
        head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        method = lines[0].split(" ", 1)[0] if lines else ""
        replied = False
        if lines and not lines[0].startswith("SIP/") and method != "ACK":
            replied = self._reply_error(header_lines(lines[1:]), exc, source, transport)
        self._events.append(MessageRejected(source, transport, exc.status, exc.reason, replied))

    def _reject_request(
        self, request: Request, exc: ParseError, source: tuple[str, int], transport: str
    ) -> None:
        replied = False
        if request.method != "ACK":
            replied = self._reply_error(list(request.headers), exc, source, transport)
        self._events.append(MessageRejected(source, transport, exc.status, exc.reason, replied))

    def _reply_error(
        self,
        items: list[tuple[str, str]],
        exc: ParseError,
        source: tuple[str, int],
        transport: str,
    ) -> bool:
        """Queue `exc.status exc.reason` copying Via/From/To/Call-ID/CSeq raw; False if no Via."""
        made = error_response(items, exc, self._new_tag)
        if made is None:
            return False
        response, top_via = made
        try:
            destination = response_destination(Via.parse(top_via), source, transport)
        except ParseError:
            destination = source
        self._outgoing.append(Outgoing(bytes(response), destination, transport))
        return True


_NOT_CANCELLED = frozenset({"CANCEL", "ACK"})
"""Methods a CANCEL never names: its own transaction shares the branch (9.1)."""
_AWAITING_FINAL = frozenset({State.TRYING, State.PROCEEDING})
"""Server transaction states before a final response (17.2.1, 17.2.2)."""


def _check_request(request: Request) -> None:
    """The header fields every request must carry for the core to match it (8.1.1, 8.2)."""
    if request.cseq.method != request.method:
        raise ParseError("CSeq method does not match the request method")
    request.from_  # noqa: B018 - read to validate
    request.to  # noqa: B018
    request.call_id  # noqa: B018
