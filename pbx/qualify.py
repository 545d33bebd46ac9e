"""OPTIONS keep-alives to registered phones ("qualify" in Asterisk terms).

Phones behind NAT lose their pinhole after 30-60 s of silence, and then calls
to them fail or drop; a small request every `qualify_interval` seconds keeps
the pinhole open. Any answer (even 404 or 501) proves the phone is reachable;
a transaction timeout marks the binding unreachable, and the B2BUA stops
forking calls to it until it answers again.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable

from pbx.config import PbxConfig
from pbx.net.local_address import LocalAddresses
from pbx.net.transport import SipEndpoint
from pbx.periodic import Periodic
from pbx.sip.events import ResponseReceived
from pbx.sip.message import Request
from pbx.sip.transaction import ClientKey, TransactionKey
from pbx.sip.transport import NextHop
from pbx.store import Binding, Store

log = logging.getLogger(__name__)


class Qualifier:
    def __init__(
        self,
        endpoint: SipEndpoint,
        store: Store,
        faces: LocalAddresses,
        config: PbxConfig,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.sip = endpoint
        self.store = store
        self.faces = faces
        self.interval = config.qualify_interval
        self.user_agent = config.user_agent
        self.wall = wall
        self._pending: dict[ClientKey, Binding] = {}
        self.rounds = Periodic(self.interval, self.qualify_all, "qualify")

    def start(self) -> None:
        self.rounds.start()

    def stop(self) -> None:
        self.rounds.stop()

    def qualify_all(self) -> None:
        # One OPTIONS at a time per binding; compared by identity, not by every field,
        # since an answer in between changes the stored row's last_qualified.
        pending = {(b.extension, b.contact) for b in self._pending.values()}
        for binding in self.store.active_bindings(self.wall()):
            if (binding.extension, binding.contact) not in pending:
                self.qualify(binding)

    def qualify(self, binding: Binding) -> ClientKey:
        destination = (binding.source_host, binding.source_port)
        face = self.faces.face(destination, binding.transport)
        local = face.endpoint()
        request = Request(
            "OPTIONS",
            binding.contact,
            [
                ("Via", f"SIP/2.0/{face.transport} {local.sent_by}"),
                ("Max-Forwards", "70"),
                ("From", f"<sip:pbx@{local.sent_by}>;tag={secrets.token_hex(6)}"),
                ("To", f"<{binding.contact}>"),
                ("Call-ID", f"{secrets.token_hex(10)}@deskpbx"),
                ("CSeq", "1 OPTIONS"),
                ("Contact", local.contact),
                ("User-Agent", self.user_agent),
            ],
        )
        tx = self.sip.send_request(request, NextHop(*destination, face.transport))
        self._pending[tx] = binding
        return tx

    def on_response(self, ev: ResponseReceived) -> bool:
        """Takes the answer to one of our OPTIONS; False when it is somebody else's."""
        if ev.tx is None or ev.tx not in self._pending or ev.response.status < 200:
            return ev.tx is not None and ev.tx in self._pending
        binding = self._pending.pop(ev.tx)
        self._mark(binding, True)
        return True

    def on_failure(self, tx: TransactionKey) -> bool:
        if not isinstance(tx, ClientKey) or tx not in self._pending:
            return False
        binding = self._pending.pop(tx)
        self._mark(binding, False)
        return True

    def _mark(self, binding: Binding, reachable: bool) -> None:
        if binding.reachable != reachable:
            state = "reachable again" if reachable else "unreachable"
            log.info("%s at %s is %s", binding.extension, binding.contact, state)
        self.store.mark_qualified(binding.extension, binding.contact, reachable, self.wall())
