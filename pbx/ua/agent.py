"""The headless SIP user agent: one account, its registration and its calls (no Qt).

Built on the PBX's own sans-IO core and asyncio shell: one `SipEndpoint`
(SipCore + transport + timers) listening on its own port, a `DialogSet`, a
`DigestClient` for 401/407 (RFC 3261 22.2, RFC 7616), a `PortAllocator` for
RTP. Everything runs on the loop that called `start()`; every event goes to
the one `on_event` callable (see pbx.ua.events).

Where requests go (RFC 3261 8.1.2): a request with Route headers goes to
the first route; an out-of-dialog request whose Request-URI names the
account's domain goes to the account's server (the outbound proxy); any
other request goes where its Request-URI says (uri_next_hop), which also
lets two UAs call each other directly.

Client transactions are awaited with `transact()` (pbx.ua.client): it
returns the final response (None when the transaction timed out or the
transport failed, to be read as 408/503) and answers a 401/407 with
credentials, at most twice per request, with a new CSeq (22.2).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from pbx.media.ports import PortAllocator
from pbx.net.dns import Locator
from pbx.net.local_address import WILDCARDS, route_source
from pbx.net.transport import Listen, SipEndpoint
from pbx.sip.core import SipCore
from pbx.sip.dialog import Dialog, DialogSet, DialogState, LocalEndpoint, new_tag
from pbx.sip.digest_client import DigestClient
from pbx.sip.errors import SipError
from pbx.sip.events import (
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from pbx.sip.locate import is_address, wants_srv
from pbx.sip.message import Request, Response
from pbx.sip.sdp import NoCommonCodec
from pbx.sip.timers import TimerConfig
from pbx.sip.transaction import ClientKey, TransactionKey
from pbx.sip.transport import NextHop, default_port, uri_next_hop
from pbx.sip.uri import SipUri
from pbx.ua.audio import AudioPort
from pbx.ua.call import Call
from pbx.ua.client import ClientTransactions
from pbx.ua.events import (
    Account,
    CallState,
    DtmfReceived,
    IncomingCall,
    OutgoingCall,
    RegistrationChanged,
    RegistrationState,
    UaError,
    UaEvent,
)
from pbx.ua.media import RtpStream
from pbx.ua.register import Registration
from pbx.ua.session import DEFAULT_CODECS, MediaSession

log = logging.getLogger(__name__)

_KEPT_ON_REDIRECT = frozenset({"Contact", "Allow", "Content-Type", "Replaces", "Referred-By"})

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER, UPDATE"


class UserAgent:
    """One SIP account's softphone core; see the module docstring."""

    def __init__(
        self,
        account: Account,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        on_event: Callable[[UaEvent], None] | None = None,
        rtp_ports: tuple[int, int] = (30000, 30999),
        *,
        codecs: Iterable[Any] = DEFAULT_CODECS,
        user_agent: str = "DeskPBX-UA",
        timers: TimerConfig | None = None,
        auto_hold: bool = True,
        follow_refer: bool = True,
        rtcp_interval: float = 5.0,
        nat_contact: bool = True,
        locator: Locator | None = None,
    ) -> None:
        self.account = account
        self.locator = locator if locator is not None else Locator()
        """DNS for a server given by name: SRV records first (RFC 3263), as Zoiper does."""
        self.server_hop = NextHop(account.server, account.port, account.transport.upper())
        """Where requests to the account's server go: its address once `start` located it."""
        self.listen = listen
        self.on_event = on_event
        self.codecs = tuple(codecs)
        self.user_agent = user_agent
        self.timer_config = timers or TimerConfig()
        self.auto_hold = auto_hold
        """Answering or placing a call puts the other live calls on hold (one active call)."""
        self.follow_refer = follow_refer
        """An accepted REFER makes us call its target (blind or attended transfer)."""
        self.nat_contact = nat_contact
        """Re-register with the address the registrar saw us from when it differs (NAT)."""
        self.public_address: tuple[str, int] | None = None
        self.rtcp_interval = rtcp_interval
        """Seconds between RTCP reports (RFC 3550 6.2: 5 s minimum for real use)."""
        self.allow = ALLOW
        self.ports = PortAllocator(*rtp_ports)
        self.dialogs = DialogSet()
        self.digest = DigestClient(account.username, account.password)
        self.calls: list[Call] = []
        self.local_host = listen[0]
        self.local_port = listen[1]
        self.registration = Registration(self)
        self._endpoint: SipEndpoint | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.client = ClientTransactions(self)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cancelled: set[TransactionKey] = set()
        self.closed = False

    # ---- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the SIP listener (port 0 picks a free one)."""
        self._loop = asyncio.get_running_loop()
        core = SipCore(self.timer_config)
        transport = self.account.transport.upper()
        listen = Listen(self.listen[0], self.listen[1], (transport,))
        self._endpoint = SipEndpoint(self._loop, core, self._handle, (listen,))
        await self._endpoint.start()
        host, port = self._endpoint.addresses[transport if transport == "UDP" else "TCP"][0][:2]
        await self.locate_server()
        if host in WILDCARDS:
            host = route_source(self.server_hop.host)
        self.local_host, self.local_port = host, port

    async def locate_server(self) -> NextHop:
        """The account's server as an address: a name with the transport's default port is
        looked up through SRV first (RFC 3263 §4.2, `_sip._udp.NAME`), then A/AAAA; the
        best server that has not just failed wins. Cached for the DNS TTL, so a refresh
        re-reads the records for free."""
        account = self.account
        transport = account.transport.upper()
        if is_address(account.server):
            return self.server_hop
        srv = wants_srv(account.server, port_given=account.port != default_port(transport))
        hop = NextHop(account.server, account.port, transport, srv=srv)
        targets = await self.locator.locate(hop)
        self.server_hop = targets[0] if targets else NextHop(account.server, account.port,
                                                             transport)  # fmt: skip
        return self.server_hop

    def server_failed(self) -> None:
        """The server did not answer: the next `locate_server` prefers another one."""
        if self.server_hop.host != self.account.server:
            self.locator.failed(self.server_hop)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Hang up every call, unregister when registered, close the listener."""
        if self.closed or self._endpoint is None:
            return
        self.closed = True
        jobs: list[Coroutine[Any, Any, Any]] = [call.hangup() for call in list(self.calls)]
        if self.registration.state is RegistrationState.REGISTERED:
            jobs.append(self.registration.unregister())
        if jobs:
            _, late = await asyncio.wait([asyncio.ensure_future(j) for j in jobs], timeout=timeout)
            for task in late:
                task.cancel()
        for call in list(self.calls):
            call.finish(None, "closed")
        self.registration.close()
        for task in list(self._tasks):
            task.cancel()
        await self.locator.aclose()
        await self._endpoint.close()

    # ---- what the GUI reads -----------------------------------------------------------------

    @property
    def sip(self) -> SipEndpoint:
        if self._endpoint is None:
            raise UaError("the user agent is not started")
        return self._endpoint

    @property
    def hostport(self) -> str:
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        return f"{host}:{self.local_port}"

    @property
    def contact_uri(self) -> str:
        """Our Contact: the public address a registrar reported (nat_contact), else ours."""
        transport = self.account.transport.upper()
        suffix = "" if transport == "UDP" else f";transport={transport.lower()}"
        hostport = self.hostport
        if self.public_address is not None:
            host, port = self.public_address
            hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"sip:{self.account.username}@{hostport}{suffix}"

    def learn_public_address(self, response: Response) -> bool:
        """Take the address a response's top Via says the server saw us from (received,
        rport); True when it differs from the Contact we used (we are behind a NAT)."""
        if not self.nat_contact or self.account.transport.upper() != "UDP":
            return False
        via = response.via
        rport = via.rport if isinstance(via.rport, int) and via.rport is not True else None
        if via.received is None and rport is None:
            return False
        seen = (via.received or self.local_host, rport or self.local_port)
        current = self.public_address or (self.local_host, self.local_port)
        if seen == current:
            return False
        self.public_address = seen
        log.info("registrar sees us at %s:%d: using it as our Contact", *seen)
        return True

    @property
    def contact(self) -> str:
        return f"<{self.contact_uri}>"

    @property
    def registration_state(self) -> RegistrationState:
        return self.registration.state

    @property
    def active_call(self) -> Call | None:
        """The call whose audio is live: the newest connected call that is not on hold."""
        live = [c for c in self.calls if c.state is CallState.CONNECTED]
        return live[-1] if live else None

    def now(self) -> float:
        return (self._loop or asyncio.get_running_loop()).time()

    def emit(self, event: UaEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # the owner's bug must not break SIP handling
            log.exception("on_event failed on %r", event)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("UA task failed: %r", task.exception())

    # ---- registration ------------------------------------------------------------------

    async def register(self, expires: int = 300) -> RegistrationChanged:
        """REGISTER with digest auth; refreshed before expiry until unregister()."""
        return await self.registration.register(expires)

    async def unregister(self) -> RegistrationChanged:
        return await self.registration.unregister()

    # ---- calls ---------------------------------------------------------------------------

    def target_uri(self, target: str) -> str:
        """A dialled string as a SIP URI: "1002" -> sip:1002@<domain>; URIs pass through."""
        target = target.strip()
        if target.lower().startswith(("sip:", "sips:")):
            return target
        if target.lower().startswith("tel:"):
            target = target[4:].split(";", 1)[0]
        number = re.sub(r"[\s().-]", "", target)
        host = self.account.realm_host
        if host == self.account.server and self.account.port != 5060:
            host = f"{host}:{self.account.port}"
        return f"sip:{number}@{host}"

    async def call(
        self,
        target: str,
        *,
        audio: AudioPort | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Call:
        """Place a call to a number or URI; returns at once in state dialing.

        `headers` go into the INVITE (Replaces for an attended transfer, X- headers)."""
        uri = self.target_uri(target)
        call_id = f"{secrets.token_hex(10)}@deskpbx-ua"
        try:
            call = await self._new_call("outgoing", call_id, uri, "", audio, CallState.DIALING)
        except OSError as exc:
            raise UaError(f"cannot place the call: {exc}") from exc
        self.hold_others(call)
        invite = self.new_request(
            "INVITE", uri, to=f"<{uri}>", call_id=call_id, from_tag=new_tag(), cseq=1,
            headers=[("Contact", self.contact), ("Allow", ALLOW), *headers,
                     ("Content-Type", "application/sdp")],
            body=call.session.offer(),
        )  # fmt: skip
        self.emit(OutgoingCall(call, uri))
        self._send_invite(call, invite)
        return call

    def _send_invite(self, call: Call, invite: Request) -> None:
        call.invite = invite

        def sent(request: Request, tx: ClientKey) -> None:
            call.invite, call.invite_tx = request, tx

        async def run() -> None:
            response = await self.transact(
                invite, on_provisional=call.invite_provisional, on_final=call.invite_final,
                on_sent=sent,
            )  # fmt: skip
            if response is None:
                call.finish(408, "no answer")

        self.spawn(run())

    def redirect(self, call: Call, target: str) -> None:
        """Follow a 3xx to `target` (RFC 3261 8.1.3.4): the same Call-ID and From tag, the
        next CSeq, the same offer, a new Request-URI and To."""
        old = call.invite
        assert old is not None
        extra = [(n, v) for n, v in old.headers if n in _KEPT_ON_REDIRECT]
        invite = self.new_request(
            "INVITE", target, to=f"<{target}>", call_id=old.call_id,
            from_tag=old.from_tag or new_tag(), cseq=old.cseq.seq + 1,
            headers=extra, body=old.body,
        )  # fmt: skip
        self._send_invite(call, invite)

    async def _new_call(
        self,
        direction: str,
        call_id: str,
        remote: str,
        display: str,
        audio: AudioPort | None,
        state: CallState,
    ) -> Call:
        loop = asyncio.get_running_loop()
        cname = f"{self.account.username}@{self.hostport}".encode()
        rtp = RtpStream(loop, audio or AudioPort(), cname=cname, rtcp_interval=self.rtcp_interval)
        port = await rtp.open(self.local_host, self.ports)
        session = MediaSession(self.local_host, port, self.codecs, username=self.account.username)
        call = Call(
            self, direction=direction, call_id=call_id, remote_uri=remote, display_name=display,
            session=session, rtp=rtp, state=state,
        )  # fmt: skip
        rtp.on_dtmf = lambda digit, ms: self._dtmf(call, digit, ms)
        self.calls.append(call)
        return call

    def _dtmf(self, call: Call, digit: str, duration_ms: int) -> None:
        self.emit(DtmfReceived(call, digit, "rfc4733", duration_ms))

    def hold_others(self, call: Call) -> None:
        if not self.auto_hold:
            return
        for other in self.calls:
            if other is not call and other.state is CallState.CONNECTED and not other.local_hold:
                self.spawn(_quietly(other.hold()))

    def forget(self, call: Call) -> None:
        if call in self.calls:
            self.calls.remove(call)
        local_tag = call.invite.from_tag if call.direction == "outgoing" and call.invite else None
        if call.dialog is not None:
            self.dialogs.remove(call.dialog.id)
        for dialog in self.dialogs.siblings(call.call_id, local_tag or ""):
            self.dialogs.remove(dialog.id)

    # ---- sending -------------------------------------------------------------------------

    def new_request(
        self,
        method: str,
        uri: str,
        *,
        to: str,
        call_id: str,
        from_tag: str,
        cseq: int,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Request:
        """An out-of-dialog request from our AOR (8.1.1); the core adds the branch."""
        account = self.account
        sender = f"<{account.aor}>;tag={from_tag}"
        if account.display_name:
            sender = f'"{account.display_name}" {sender}'
        items = [
            ("Via", f"SIP/2.0/{account.transport.upper()} {self.hostport};rport"),
            ("Max-Forwards", "70"),
            ("From", sender),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("User-Agent", self.user_agent),
            *headers,
        ]
        return Request(method, uri, items, body)

    def local_endpoint(self) -> LocalEndpoint:
        return LocalEndpoint(self.contact, self.hostport, self.account.transport.upper())

    def next_hop(self, request: Request) -> NextHop:
        routes = request.routes
        if routes:
            return uri_next_hop(routes[0].uri)
        uri = request.uri
        account = self.account
        if (
            isinstance(uri, SipUri)
            and uri.host in (account.realm_host, account.server)
            and (uri.port in (None, account.port))
        ):
            return self.server_hop
        return uri_next_hop(uri)

    async def transact(
        self,
        request: Request,
        *,
        dialog: Dialog | None = None,
        on_provisional: Callable[[Response], None] | None = None,
        on_final: Callable[[Response | None], None] | None = None,
        on_sent: Callable[[Request, ClientKey], None] | None = None,
    ) -> Response | None:
        """Send `request` in a client transaction and wait for its final response
        (None: no answer or transport failure); 401/407 are answered (pbx.ua.client)."""
        return await self.client.send(
            request, dialog=dialog, on_provisional=on_provisional, on_final=on_final,
            on_sent=on_sent,
        )  # fmt: skip

    def send_request(
        self, request: Request, *, dialog: Dialog | None = None
    ) -> asyncio.Future[Response | None]:
        """Like `transact`, but the request leaves now, in the order requests are made."""
        return self.client.send(request, dialog=dialog)

    def send_ack(self, ack: Request) -> None:
        self.sip.send_stateless(ack, self.next_hop(ack))

    def send_response(self, tx: TransactionKey, response: Response) -> None:
        self.sip.send_response(tx, response)

    def send_response_again(self, response: Response) -> None:
        """Resend a 2xx to INVITE (13.3.1.4) to where its top Via says."""
        via = response.via
        host = via.received or via.sent_by[0]
        port = via.rport if isinstance(via.rport, int) and via.rport is not True else None
        hop = NextHop(host, port or via.sent_by[1] or 5060, self.account.transport.upper())
        self.sip.send_stateless(response, hop)

    def reply(self, tx: TransactionKey | None, response: Response) -> None:
        if tx is None:
            return
        try:
            self.sip.send_response(tx, response)
        except SipError as exc:
            log.info("cannot answer %s: %s", tx, exc)

    def cancel(self, tx: TransactionKey) -> bool:
        return isinstance(tx, ClientKey) and self.sip.cancel(tx)

    def dialog_response(self, call: Call, response: Response) -> Dialog | None:
        """Apply a response to our INVITE to the dialog set; ends redundant forks with BYE."""
        if call.invite is None:
            return None
        outcome = self.dialogs.invite_response(call.invite, response, self.local_endpoint())
        dialog = outcome.dialog
        if dialog is not None and dialog.redundant and 200 <= response.status < 300:
            self.send_ack(dialog.ack_for(response))
            self.spawn(self.transact(dialog.bye(), dialog=dialog))
        return dialog

    # ---- the endpoint's events ---------------------------------------------------------

    def _handle(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, ResponseReceived):
            self.client.on_response(event)
        elif isinstance(event, TransactionTimedOut | TransportErrorOccurred):
            if isinstance(event.tx, ClientKey):
                self.client.final(event.tx, None)

    def _on_request(self, ev: RequestReceived) -> None:
        request = ev.request
        if request.to_tag is not None:
            self._in_dialog(ev)
        elif request.method == "INVITE":
            self.spawn(self._incoming(ev))
        elif request.method == "CANCEL":
            self._on_cancel(ev)
        elif request.method == "OPTIONS":
            self.reply(ev.tx, request.make_response(200, to_tag=new_tag(),
                                                    headers=[("Allow", ALLOW)]))  # fmt: skip
        elif request.method != "ACK":
            self.reply(ev.tx, request.make_response(405, to_tag=new_tag(),
                                                    headers=[("Allow", ALLOW)]))  # fmt: skip

    def _in_dialog(self, ev: RequestReceived) -> None:
        request = ev.request
        dialog = self.dialogs.find_for_request(request)
        call = self._call_of(dialog)
        if call is None or dialog is None:
            if request.method != "ACK":
                self.reply(ev.tx, request.make_response(481))
            return
        call.on_request(request, ev.tx)

    def _call_of(self, dialog: Dialog | None) -> Call | None:
        if dialog is None:
            return None
        return next((c for c in self.calls if c.dialog is not None and c.dialog.id == dialog.id),
                    None)  # fmt: skip

    def _on_cancel(self, ev: RequestReceived) -> None:
        """RFC 3261 9.2: 200 to a CANCEL that names a live transaction of any method (an
        OPTIONS still kept for retransmissions too), 481 when none; only an INVITE ends."""
        target = self.sip.core.cancel_target(ev.tx, self.sip.now()) if ev.tx is not None else None
        self.reply(ev.tx, ev.request.make_response(200 if target else 481))
        invite_tx = target if target is not None and target.method == "INVITE" else None
        if invite_tx is None:
            return
        call = next((c for c in self.calls if c.invite_tx == invite_tx), None)
        if call is not None:
            call.cancelled()
        else:
            self._cancelled.add(invite_tx)

    async def _incoming(self, ev: RequestReceived) -> None:
        request, tx = ev.request, ev.tx
        assert tx is not None
        if self.closed:
            self.reply(tx, request.make_response(480, to_tag=new_tag()))
            return
        if request.headers.get("Replaces") and self._replaced_call(request) is None:
            self.reply(tx, request.make_response(481, to_tag=new_tag()))  # RFC 3891 3
            return
        remote = request.from_
        try:
            call = await self._new_call("incoming", request.call_id, str(remote.uri),
                                        remote.display or "", None, CallState.RINGING)  # fmt: skip
        except OSError as exc:
            log.warning("incoming call refused: %s", exc)
            self.reply(tx, request.make_response(503, to_tag=new_tag()))
            return
        call.invite, call.invite_tx = request, tx
        if tx in self._cancelled:  # the CANCEL overtook us while the RTP port was bound
            self._cancelled.discard(tx)
            self.reply(tx, request.make_response(487, to_tag=new_tag()))
            call.finish(487, "cancelled")
            return
        if request.body:
            try:
                call.session.answer(request.body)
            except (NoCommonCodec, SipError):
                self.reply(tx, request.make_response(488, to_tag=new_tag()))
                call.finish(488, "no common codec")
                return
        ringing = request.make_response(180, to_tag=new_tag(), headers=[("Contact", self.contact)])
        call.dialog = self.dialogs.add(Dialog.uas(request, ringing, self.local_endpoint()))
        self.send_response(tx, ringing)
        replaced = self._replaced_call(request)
        if replaced is not None:  # attended transfer: take over at once (RFC 3891 3)
            call.replaces = replaced
            await call.answer()
            return
        self.emit(IncomingCall(call, str(remote.uri), remote.display or ""))

    def _replaced_call(self, request: Request) -> Call | None:
        value = request.headers.get("Replaces")
        if not value:
            return None
        call_id, _, params = value.partition(";")
        fields = dict(p.strip().partition("=")[::2] for p in params.split(";") if p.strip())
        for call in self.calls:
            dialog = call.dialog
            if dialog is None or dialog.state is not DialogState.CONFIRMED:
                continue
            if (dialog.id.call_id, dialog.id.local_tag, dialog.id.remote_tag) == (
                call_id.strip(),
                fields.get("to-tag"),
                fields.get("from-tag"),
            ):
                return call
        return None


async def _quietly(coro: Coroutine[Any, Any, Any]) -> None:
    try:
        await coro
    except UaError as exc:
        log.info("%s", exc)
