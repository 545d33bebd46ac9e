"""The PBX composed: store, SIP endpoint, registrar, B2BUA, relay, keep-alives.

This is the composition root for the PBX (design.md): it builds every part
from one `PbxConfig`, routes SIP events to the part that owns them, and stops
cleanly. `serve()` runs it in the foreground until SIGTERM/SIGINT;
`run_in_thread()` gives the desktop app a PBX on its own thread and loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING

from pbx import __version__
from pbx.auth_ban import AuthBans
from pbx.b2bua import B2bua
from pbx.call import ALLOW
from pbx.config import HEARTBEAT_SETTING, PbxConfig
from pbx.media.ports import PortAllocator
from pbx.media.relay import Relay
from pbx.net.dns import Locator
from pbx.net.local_address import LocalAddresses, family_of
from pbx.net.transport import SipEndpoint, new_event_loop
from pbx.qualify import Qualifier
from pbx.recording import RecordingManager, RecordingSettings
from pbx.registrar import Registrar, RegistrarConfig
from pbx.registrar_lane import RegisterLane
from pbx.sip.checks import check_request_against, uas_policy
from pbx.sip.core import SipCore
from pbx.sip.digest_server import DigestServer
from pbx.sip.events import (
    Event,
    MessageRejected,
    RequestReceived,
    ResponseReceived,
    TransactionTimedOut,
    TransportErrorOccurred,
)
from pbx.sip.message import Request, Response
from pbx.store import Cdr, Disposition, HangupSide, Store
from pbx.store.recordings import Recording
from pbx.trunks import TrunkManager
from pbx.tuning import raise_open_file_limit, tune_gc

if TYPE_CHECKING:
    from pbx.api.app import ApiServer

log = logging.getLogger(__name__)

ACCEPT = "application/sdp"
SUPPORTED = ""
METHODS = tuple(m.strip() for m in ALLOW.split(","))
UAS_POLICY = uas_policy(
    allowed_methods=METHODS,
    accepted_content_types=(ACCEPT, "application/dtmf-relay", "application/dtmf"),
)
"""What every request is checked against (RFC 3261 8.2), built once rather than per request."""
PURGE_INTERVAL = 60.0


class Pbx:
    """One running PBX. `await start()`, then `await aclose()`."""

    def __init__(
        self,
        config: PbxConfig,
        *,
        wall: Callable[[], float] = time.time,
        register_lane: bool | None = None,
    ) -> None:
        self.config = config
        self.register_lane = config.register_lane if register_lane is None else register_lane
        """Plain UDP REGISTERs take pbx.registrar_lane (False: every request takes the core)."""
        self.wall = wall
        self.started_at = 0.0
        self.store: Store | None = None
        self.endpoint: SipEndpoint | None = None
        self._purge: asyncio.TimerHandle | None = None
        self.api: ApiServer | None = None
        #: Call recording (the HTTP API finds it under this name).
        self.recordings: RecordingManager | None = None
        #: Addresses banned after repeated wrong passwords (pbx.auth_ban).
        self.bans = AuthBans(0)
        #: DNS for trunks given by name (pbx.net.dns), shared by the trunk links and calls.
        self.locator: Locator | None = None
        self._closed = asyncio.Event()

    async def start(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self.store = store = Store.in_dir(config.data_dir)
        self.auth = DigestServer(
            store.realm,
            store.nonce_secret,
            config.nonce_lifetime,
            algorithms=config.auth_algorithms,
        )
        self.core = SipCore(config.timers)
        self.endpoint = SipEndpoint(
            loop,
            self.core,
            self._on_event,
            config.listen,
            max_message_size=config.max_message_size,
            idle_timeout=config.tcp_idle_timeout,
            udp_receive_buffer=config.udp_receive_buffer,
        )
        self.endpoint.bans = self.bans = AuthBans(
            config.auth_ban_after,
            config.auth_ban_window,
            config.auth_ban_seconds,
            config.auth_ban_exempt,
        )
        self._restore_bans()
        try:
            await self.endpoint.start()
        except BaseException:
            store.close()
            raise
        self.faces = LocalAddresses(self.endpoint.addresses, config.public_address)
        self.relay = Relay(PortAllocator(*config.rtp_ports))
        self.recordings = RecordingManager(
            store,
            config.data_dir,
            clock=loop.time,  # the relay stamps tapped packets with the loop's time
            wall=self.wall,
            settings=RecordingSettings.from_extra(config.extra),
        )
        try:
            repaired = self.recordings.start()  # repairs what a crash left open, retention
            recover_cdrs(store, repaired)
        except Exception:  # a damaged recordings folder must not keep the PBX down
            log.exception("recording startup check failed")
        self.registrar = Registrar(
            store,
            self.auth,
            RegistrarConfig(config.min_expires, config.max_expires, config.default_expires),
            bans=self.bans,
        )
        if self.register_lane:
            self.endpoint.udp_lane = RegisterLane(self.registrar, self.core, self.wall).handle
        self.locator = locator = Locator(
            config.dns_servers, clock=loop.time, reachable=self._reachable
        )
        locator.start()
        self.trunks = TrunkManager(  # registrations with carriers and their OPTIONS qualify
            self.endpoint,
            store,
            self.faces,
            user_agent=config.user_agent,
            qualify_interval=config.qualify_interval,
            wall=self.wall,
            locator=locator,
        )
        self.b2bua = B2bua(
            self.endpoint,
            store,
            self.auth,
            self.relay,
            self.faces,
            config,
            wall=self.wall,
            recordings=self.recordings,
            trunks=self.trunks,
            bans=self.bans,
            locator=locator,
        )
        self.trunks.start()
        self.b2bua.media_watch.start()
        self.b2bua.session_timers.start()
        self.b2bua.dialog_ping.start()
        self.qualifier = Qualifier(self.endpoint, store, self.faces, config, wall=self.wall)
        self.qualifier.start()
        self._schedule_purge()
        self.started_at = self.wall()
        if config.http is not None:
            from pbx.api import start_api

            try:
                self.api = await start_api(self, *config.http)
            except BaseException:
                await self.aclose()
                raise
            self.endpoint.on_response_sent = self.api.metrics.count_response
        log.info("DeskPBX %s listening on %s", __version__, self.describe_listeners())
        self._heartbeat()
        self._check_receive_buffers()

    def _reachable(self, address: str, transport: str) -> bool:
        """Whether a listener of ours can send to `address` (its family) over `transport`."""
        assert self.endpoint is not None
        family = family_of(address)
        listeners = self.endpoint.addresses.get(transport.upper()) or []
        return any(family_of(host) == family for host, *_ in listeners)

    def _check_receive_buffers(self) -> None:
        """Say so when the system granted the SIP UDP sockets less receive buffer than
        configured: bursts beyond it are dropped, and only a raised cap helps."""
        assert self.endpoint is not None
        wanted = self.config.udp_receive_buffer
        granted = self.endpoint.transports.udp_receive_buffers.values()
        smallest = min(granted, default=wanted)
        if wanted > 0 and 0 < smallest < wanted:
            log.info(
                "SIP UDP receive buffer is %d KiB, less than the %d KiB asked for: the system "
                "caps it (on Linux raise sysctl net.core.rmem_max)", smallest // 1024,
                wanted // 1024,
            )  # fmt: skip

    def describe_listeners(self) -> str:
        assert self.endpoint is not None
        parts = []
        for transport, addresses in self.endpoint.addresses.items():
            for host, port, *_ in addresses:
                shown = f"[{host}]" if ":" in host else host
                parts.append(f"{transport} {shown}:{port}")
        return ", ".join(parts)

    def sip_port(self, transport: str = "UDP") -> int:
        assert self.endpoint is not None
        return self.endpoint.addresses[transport][0][1]

    # ------------------------------------------------------------------ events

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, ResponseReceived):
            if not self.qualifier.on_response(event) and not self.trunks.on_response(event):
                self.b2bua.on_response(event)
        elif isinstance(event, TransactionTimedOut | TransportErrorOccurred):
            if not self.qualifier.on_failure(event.tx) and not self.trunks.on_failure(event.tx):
                self.b2bua.on_timeout(event.tx)
        elif isinstance(event, MessageRejected):
            log.info(
                "rejected a message from %s:%s (%s): %d %s",
                *event.source, event.transport, event.status, event.reason,
            )  # fmt: skip

    def _on_request(self, ev: RequestReceived) -> None:
        assert self.endpoint is not None
        request = ev.request
        if request.method != "ACK":
            error = check_request_against(request, UAS_POLICY)
            if error is not None:
                if ev.tx is not None:
                    self.endpoint.send_response(ev.tx, error)
                return
        if request.method == "REGISTER":
            response = self.registrar.handle(
                request, ev.source, ev.transport, self.endpoint.now(), self.wall()
            )
            assert ev.tx is not None
            self.endpoint.send_response(ev.tx, response)
        elif request.method == "OPTIONS" and request.to_tag is None:
            assert ev.tx is not None
            self.endpoint.send_response(ev.tx, self._options_answer(request))
        else:
            self.b2bua.on_request(ev)

    def _options_answer(self, request: Request) -> Response:
        response = request.make_response(200, to_tag=secrets.token_hex(6))
        response.headers.add("Allow", ALLOW)
        response.headers.add("Accept", ACCEPT)
        response.headers.add("Supported", SUPPORTED or "")
        response.headers.add("User-Agent", self.config.user_agent)
        return response

    # ------------------------------------------------------------------ housekeeping

    def _schedule_purge(self) -> None:
        loop = asyncio.get_running_loop()
        self._purge = loop.call_later(PURGE_INTERVAL, self._purge_bindings)

    def _purge_bindings(self) -> None:
        if self.store is not None:
            removed = self.store.purge_expired_bindings(self.wall())
            if removed:
                log.info("purged %d expired bindings", removed)
            self.bans.keep_only(self.store.active_bans(self.wall()))  # `deskpbx ban lift`
            self._heartbeat()
        self._schedule_purge()

    def _heartbeat(self) -> None:
        """Say in the database that this PBX runs, where, and since when: `deskpbx status`
        (another process) reads it. Written at start and every minute; cleared at stop."""
        assert self.store is not None
        http = self.config.http
        beat = {"pid": os.getpid(), "since": self.started_at, "seen": self.wall(),
                "sip": self.describe_listeners(), "version": __version__,
                "http": f"{http[0]}:{http[1]}" if http is not None else None}  # fmt: skip
        try:
            self.store.set_setting(HEARTBEAT_SETTING, json.dumps(beat))
        except Exception:  # the PBX runs on whatever the disk says
            log.exception("could not write the heartbeat")

    def _restore_bans(self) -> None:
        """Bans from before a restart still hold; new ones and lifts go to the database."""
        assert self.store is not None and self.endpoint is not None
        store, wall, now = self.store, self.wall(), self.endpoint.now()
        if self.bans.after:
            for host, until in store.active_bans(wall).items():
                self.bans.restore(host, until - wall, now)

        def changed(host: str, until: float | None) -> None:
            try:
                if until is None:
                    store.delete_ban(host)
                else:
                    store.save_ban(host, self.wall() + until - self.monotonic(), self.wall())
            except Exception:  # the ban holds in memory whatever the disk says
                log.exception("could not keep the ban of %s in the database", host)

        self.bans.on_change = changed

    def monotonic(self) -> float:
        """The loop's clock, the one bans and nonces age by (0.0 before start)."""
        return self.endpoint.now() if self.endpoint is not None else 0.0

    def status(self) -> dict[str, object]:
        assert self.store is not None
        return {
            "version": __version__,
            "uptime": self.wall() - self.started_at,
            "active_calls": self.b2bua.active_calls,
            "registered": sum(self.store.active_binding_counts(self.wall()).values()),
            "call_limits": self.b2bua.admission.stats(),
            "media_timeout": {
                "seconds": self.config.media_timeout,
                "ended": self.b2bua.media_watch.ended,
            },
            "dialog_ping": {
                "seconds": self.config.dialog_ping,
                "ended": self.b2bua.dialog_ping.ended,
            },
            "session_timers": {
                "min_se": self.config.session_min_se,
                "active": len(self.b2bua.session_timers.timers),
                "ended": self.b2bua.session_timers.ended,
            },
            "auth_bans": self.bans.stats(self.monotonic()),
            "dns": self.locator.stats() if self.locator is not None else {},
        }

    async def aclose(self) -> None:
        """End calls (BYE / final answers, CDRs written), then close sockets and the store."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._purge is not None:
            self._purge.cancel()
        if self.endpoint is None:
            return
        await self.b2bua.aclose()
        if self.recordings is not None:  # after the calls ended, before the store closes
            await self.recordings.aclose()
        self.qualifier.stop()
        self.trunks.stop()
        if self.locator is not None:
            await self.locator.aclose()
        if self.api is not None:
            await self.api.close()  # after the hangups above, so webhooks hear of them
        await asyncio.sleep(0.05)  # let the BYEs and final answers leave the sockets
        await self.relay.aclose()
        await self.endpoint.close()
        if self.store is not None:
            try:
                self.store.set_setting(HEARTBEAT_SETTING, "")  # `deskpbx status`: stopped
            except Exception:
                log.exception("could not clear the heartbeat")
            self.store.close()
        log.info("DeskPBX stopped")


CRASH_REASON = "PBX stopped during the call (recovered at restart)"


def recover_cdrs(store: Store, repaired: list[Recording]) -> list[Cdr]:
    """A CDR for each recorded call a crash cut short, from its repaired recording.

    The B2BUA writes a call's CDR when the call ends, so a killed PBX leaves none;
    the recording row still says who talked, from when (the answer) and for how
    long (the audio the file holds). Calls that already have a CDR are skipped.
    """
    written = []
    for row in repaired:
        end = row.start + row.duration
        known = store.query_cdrs(caller=row.caller, callee=row.callee, since=row.start - 86400,
                                 until=end + 1, limit=1000)  # fmt: skip
        if not row.caller or any(cdr.call_id == row.call_id for cdr in known):
            continue
        cdr = Cdr.from_times(
            call_id=row.call_id, caller=row.caller, callee=row.callee, start=row.start,
            answer=row.start, end=end, disposition=Disposition.ANSWERED, sip_code=200,
            sip_reason=CRASH_REASON, hangup_side=HangupSide.SYSTEM, recording=row.path,
        )  # fmt: skip
        written.append(store.add_cdr(cdr))
        log.warning("wrote the CDR of call %s cut short by a crash", row.call_id)
    return written


async def serve(config: PbxConfig, ready: Callable[[Pbx], None] | None = None) -> int:
    """Run until SIGTERM/SIGINT; then stop taking calls, end active ones, exit 0."""
    raise_open_file_limit()  # before the relay binds: it sizes its connected twins by it
    pbx = Pbx(config)
    await pbx.start()
    tune_gc()  # a process of its own: freeze start-up objects, collect less often
    if ready is not None:
        ready(pbx)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: no signal handlers in the loop
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop.set))
    try:
        await stop.wait()
    finally:
        log.info("stopping: ending %d active calls", pbx.b2bua.active_calls)
        await pbx.aclose()
    return 0


def run(config: PbxConfig) -> int:
    """`deskpbx serve`: the PBX in the foreground on a uvloop loop where there is one."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(serve(config))
    finally:
        loop.close()


def run_in_thread(config: PbxConfig) -> tuple[asyncio.AbstractEventLoop, Pbx, threading.Thread]:
    """Start a PBX on its own thread and loop (the desktop app's embedding).

    Returns once the PBX listens; start errors are raised here. Stop it with
    `asyncio.run_coroutine_threadsafe(pbx.aclose(), loop).result()`, then
    `loop.call_soon_threadsafe(loop.stop)` and `thread.join()`.
    """
    raise_open_file_limit()  # the app's process: calls need sockets (pbx.tuning)
    loop = new_event_loop()
    pbx = Pbx(config)
    started: Future[None] = Future()

    def main() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            try:
                await pbx.start()
            except BaseException as exc:
                started.set_exception(exc)
                return
            started.set_result(None)

        loop.run_until_complete(boot())
        if started.exception() is None:
            loop.run_forever()
        loop.close()

    thread = threading.Thread(target=main, name="deskpbx", daemon=True)
    thread.start()
    started.result(timeout=30)
    return loop, pbx, thread
