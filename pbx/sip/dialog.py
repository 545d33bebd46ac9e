"""SIP dialogs: state, route set, CSeq bookkeeping and in-dialog requests.

Theory of operation (RFC 3261 section 12, 13, 14, 15; RFC 6026 for 2xx/ACK):

A `Dialog` is the peer-to-peer relationship that an INVITE (or SUBSCRIBE/REFER)
creates.  It is identified by `DialogId` (Call-ID, local tag, remote tag) and
holds what every later request in it needs: the local and remote URIs, the
remote target (the peer's Contact), the route set (Record-Route, reversed for
the UAC, as-is for the UAS, 12.1.1/12.1.2) and the local and remote CSeq
numbers.  Its state is `DialogState`: EARLY (created by a 1xx with a To tag),
CONFIRMED (2xx) and TERMINATED (non-2xx final in the early state, BYE, 408/481
to an in-dialog request, 12.2.1.2).

The module is sans-IO: it builds `Request` objects and reads `Request` and
`Response` objects, and the caller hands them to transactions.  Time only
appears in `AnswerRetransmitter` (the UAS 2xx retransmission of 13.3.1.4),
where `now` (monotonic seconds) is an argument.

* The UAC side: `Dialog.uac(request, response, local)` from a 101-299 response
  carrying a To tag; `receive_response()` moves it along; `ack_for()` builds
  the ACK for a 2xx and returns the very same ACK for each retransmission of
  that 2xx (13.2.2.4, RFC 6026 section 8.4).
* The UAS side: `Dialog.uas(request, response, local)` from the 1xx/2xx we
  send; `response_sent()` confirms or terminates it; `receive_request()`
  enforces the CSeq order of 12.2.2 (500 for a lower CSeq) and applies target
  refreshes.
* In-dialog requests (12.2.1.1): `create_request()` and the `bye()`,
  `reinvite()`, `update()`, `info()`, `refer()` helpers, with loose routing
  (;lr) or the strict-routing rewrite when the first route lacks ;lr.
* `build_cancel()` (9.1) and `build_non2xx_ack()` (17.1.1.3) work on the
  INVITE outside any dialog.
* `DialogSet` finds the dialog of an incoming request or response and keeps
  the early dialogs of one forked INVITE together: the first 2xx confirms its
  dialog and terminates the other early ones; a later 2xx from another branch
  makes a dialog marked `redundant`, to be ACKed and then ended with BYE
  (13.2.2.4).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pbx.sip import transaction
from pbx.sip.entropy import token_hex
from pbx.sip.errors import LocalProtocolError
from pbx.sip.headers import Headers, checked_header
from pbx.sip.message import Request, Response
from pbx.sip.uri import NameAddr, SipUri, Uri

__all__ = [
    "AnswerRetransmitter",
    "Dialog",
    "DialogId",
    "DialogSet",
    "DialogState",
    "InviteOutcome",
    "LocalEndpoint",
    "RetransmitAction",
    "Role",
    "build_cancel",
    "build_non2xx_ack",
    "new_branch",
    "new_tag",
]

BRANCH_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7
DEFAULT_MAX_FORWARDS = 70  # RFC 3261 8.1.1.6
_MAX_FORWARDS = str(DEFAULT_MAX_FORWARDS)
T1 = 0.5  # RFC 3261 17.1.1.1, seconds
T2 = 4.0

# Methods whose 2xx (and, for INVITE, reliable-or-not 1xx) creates a dialog.
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
# Target refresh requests replace the remote target (RFC 3261 12.2, RFC 3311, RFC 6665 4.1.2).
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})
# Requests that carry our Contact: target refreshes, and REFER (RFC 3515 2.4).
CARRIES_CONTACT = TARGET_REFRESH | {"REFER"}
# URI parameters that may not appear in a Request-URI (RFC 3261 19.1.1 table 1).
NOT_IN_REQUEST_URI = frozenset({"method"})


def new_branch() -> str:
    """A fresh RFC 3261 branch (8.1.1.7): the magic cookie plus 64 random bits."""
    return BRANCH_COOKIE + token_hex(8)


def new_tag() -> str:
    """A fresh From/To tag with at least 32 bits of randomness (19.3)."""
    return token_hex(6)


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Role(enum.Enum):
    UAC = "uac"
    UAS = "uas"


@dataclass(frozen=True, slots=True)
class DialogId:
    """Call-ID plus local and remote tag (12).  remote_tag is None for RFC 2543 peers."""

    call_id: str
    local_tag: str
    remote_tag: str | None

    @classmethod
    def of_response(cls, response: Response) -> DialogId:
        """The dialog of a response to our own request: our tag is its From tag (12.1.2)."""
        return cls(response.call_id, response.from_tag or "", response.to_tag)


@dataclass(frozen=True, slots=True)
class LocalEndpoint:
    """What our side puts into in-dialog requests: the Contact and the Via sent-by."""

    contact: str  # e.g. "<sip:100@192.0.2.1:5060>"
    sent_by: str  # host[:port] of our Via
    transport: str = "UDP"


def _contact_uri(message: Request | Response) -> Uri | None:
    contacts = message.contacts
    if not contacts or contacts[0].is_star:
        return None
    return contacts[0].uri


@dataclass(slots=True)
class Dialog:
    """One dialog, UAC or UAS side.  Mutable: responses and requests move it along."""

    id: DialogId
    role: Role
    state: DialogState
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: Uri
    route_set: list[NameAddr]
    local: LocalEndpoint
    local_seq: int | None
    remote_seq: int | None
    secure: bool = False
    method: str = "INVITE"
    invite_seq: int | None = None  # CSeq of the INVITE whose 2xx our ACK answers
    invite_pending: bool = False  # our own (re-)INVITE awaits its final response (14.1)
    acked: bool = False  # UAS: the ACK for our latest 2xx arrived
    redundant: bool = False  # a second 2xx of a forked INVITE: ACK, then BYE it
    bye_sent: bool = False
    ended_early: bool = False  # terminated before any 2xx: a late 2xx makes a new dialog
    _acks: dict[int, Request] = field(default_factory=dict, repr=False)
    _from_to: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    # ---- creation ------------------------------------------------------------

    @classmethod
    def uac(
        cls,
        request: Request,
        response: Response,
        local: LocalEndpoint,
        *,
        over_tls: bool = False,
    ) -> Dialog:
        """The UAC's dialog from a 101-299 response with a To tag (12.1.2)."""
        if not 101 <= response.status <= 299 or response.to_tag is None:
            raise LocalProtocolError("only a 101-299 response with a To tag creates a dialog")
        local_tag = request.from_tag
        if local_tag is None:
            raise LocalProtocolError("our request has no From tag")
        cseq = request.cseq
        return cls(
            id=DialogId(request.call_id, local_tag, response.to_tag),
            role=Role.UAC,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_uri=request.from_,
            remote_uri=response.to,
            remote_target=_contact_uri(response) or request.uri,
            route_set=list(reversed(response.record_routes)),
            local=local,
            local_seq=cseq.seq,
            remote_seq=None,
            secure=over_tls and _scheme(request.uri) == "sips",
            method=request.method,
            invite_seq=cseq.seq if request.method == "INVITE" else None,
            invite_pending=request.method == "INVITE" and response.status < 200,
        )

    @classmethod
    def uas(
        cls,
        request: Request,
        response: Response,
        local: LocalEndpoint,
        *,
        over_tls: bool = False,
    ) -> Dialog:
        """The UAS's dialog from the 101-299 response it sends (12.1.1).

        Without a Contact in the request (RFC 2543 peers, RFC 4475 3.4.1) the
        From URI is the remote target.
        """
        if not 101 <= response.status <= 299 or response.to_tag is None:
            raise LocalProtocolError("only a 101-299 response with a To tag creates a dialog")
        return cls(
            id=DialogId(request.call_id, response.to_tag, request.from_tag),
            role=Role.UAS,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_uri=response.to,
            remote_uri=request.from_,
            remote_target=_contact_uri(request) or request.from_.uri,
            route_set=list(request.record_routes),
            local=local,
            local_seq=None,
            remote_seq=request.cseq.seq,
            secure=over_tls and _scheme(request.uri) == "sips",
            method=request.method,
            invite_seq=request.cseq.seq if request.method == "INVITE" else None,
        )

    # ---- UAC: responses --------------------------------------------------------

    def receive_response(self, response: Response) -> None:
        """Apply a response to a request we sent in (or creating) this dialog."""
        method, status = response.cseq.method, response.status
        if status >= 200 and method == "INVITE" and response.cseq.seq == self.invite_seq:
            self.invite_pending = False
        if status in (408, 481) and self.state is DialogState.CONFIRMED:
            self.state = DialogState.TERMINATED  # 12.2.1.2
        elif method == "BYE" and status >= 200:
            self.state = DialogState.TERMINATED  # 15.1.1
        elif method in DIALOG_CREATING and self.state is DialogState.EARLY:
            self._early_response(response)
        elif 200 <= status < 300 and method in TARGET_REFRESH:
            self._refresh_target(response)

    def _early_response(self, response: Response) -> None:
        status = response.status
        if status >= 300:
            self.state, self.ended_early = DialogState.TERMINATED, True  # 12.3
        elif status >= 200:
            self.state = DialogState.CONFIRMED
            self.route_set = list(reversed(response.record_routes))  # 13.2.2.4
            self._refresh_target(response)
        else:
            self._refresh_target(response)

    def _refresh_target(self, message: Request | Response) -> None:
        target = _contact_uri(message)
        if target is not None:
            self.remote_target = target

    def ack_for(
        self,
        response: Response,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """The ACK for a 2xx to our (re-)INVITE; the same ACK for each retransmission (13.2.2.4).

        RFC 6026 section 8.4: each retransmitted 2xx is answered by the ACK
        already sent, same branch and all, so it is cached by CSeq number.
        Apply the 2xx with receive_response() (or DialogSet.invite_response())
        first, so the ACK goes to the confirmed route set and remote target.
        """
        cseq = response.cseq
        if cseq.method != "INVITE" or not 200 <= response.status < 300:
            raise LocalProtocolError("ack_for() takes a 2xx to INVITE; a non-2xx ACK is hop-by-hop")
        cached = self._acks.get(cseq.seq)
        if cached is not None:
            return cached
        if cseq.seq != self.invite_seq:
            raise LocalProtocolError(f"CSeq {cseq.seq} is not our INVITE in this dialog")
        ack = self._build("ACK", cseq.seq, body, content_type, headers, None)
        self._acks[cseq.seq] = ack
        return ack

    # ---- UAS: requests and our responses ---------------------------------------

    def receive_request(self, request: Request) -> Response | None:
        """Check and apply an in-dialog request (12.2.2).  Returns an error to send, or None."""
        method, seq = request.method, request.cseq.seq
        if method == "ACK":
            if seq == self.invite_seq:
                self.acked = True
            return None
        if method == "CANCEL":
            return None
        if self.remote_seq is not None and seq < self.remote_seq:
            return request.make_response(500, "CSeq Out of Order", to_tag=self.id.local_tag)
        if method == "INVITE" and self.invite_pending:
            return request.make_response(491, to_tag=self.id.local_tag)  # 14.2
        self.remote_seq = seq
        if method == "INVITE":
            self.invite_seq, self.acked = seq, False
        if method in TARGET_REFRESH:
            self._refresh_target(request)  # 12.2.2
        if method == "BYE":
            self.state = DialogState.TERMINATED  # 15.1.2
        return None

    def response_sent(self, response: Response) -> None:
        """Apply a response we sent to the dialog-creating request (12.1.1, 13.3.1.4)."""
        if response.cseq.method != self.method or self.state is not DialogState.EARLY:
            return
        if 200 <= response.status < 300:
            self.state = DialogState.CONFIRMED
        elif response.status >= 300:
            self.state = DialogState.TERMINATED

    def terminate(self) -> None:
        """End the dialog without a message, e.g. when the BYE transaction timed out."""
        self.state = DialogState.TERMINATED

    # ---- building in-dialog requests (12.2.1.1) --------------------------------

    def create_request(
        self,
        method: str,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        branch: str | None = None,
    ) -> Request:
        """A new in-dialog request with the next local CSeq number."""
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is built with ack_for() / build_cancel()")
        if self.state is DialogState.TERMINATED:
            raise LocalProtocolError(f"dialog {self.id} is terminated")
        if method == "BYE" and self.role is Role.UAS and self.state is DialogState.EARLY:
            raise LocalProtocolError("the callee ends an early dialog with a final response (15)")
        if method == "INVITE" and self.invite_pending:
            raise LocalProtocolError("an INVITE is already in progress in this dialog (14.1)")
        self.local_seq = (self.local_seq or 0) + 1
        request = self._build(method, self.local_seq, body, content_type, headers, branch)
        if method == "INVITE":
            self.invite_seq, self.invite_pending = self.local_seq, True
        elif method == "BYE":
            self.bye_sent = True
        return request

    def bye(self, *, headers: Iterable[tuple[str, str]] = ()) -> Request:
        """BYE (15.1.1)."""
        return self.create_request("BYE", headers=headers)

    def reinvite(self, sdp: bytes, *, headers: Iterable[tuple[str, str]] = ()) -> Request:
        """A re-INVITE carrying a new SDP offer (14.1)."""
        return self.create_request(
            "INVITE", body=sdp, content_type="application/sdp", headers=headers
        )

    def update(self, sdp: bytes = b"", *, headers: Iterable[tuple[str, str]] = ()) -> Request:
        """UPDATE (RFC 3311), with an SDP offer when given."""
        content_type = "application/sdp" if sdp else None
        return self.create_request("UPDATE", body=sdp, content_type=content_type, headers=headers)

    def info(self, body: bytes, content_type: str) -> Request:
        """INFO (RFC 6086), e.g. application/dtmf-relay."""
        return self.create_request("INFO", body=body, content_type=content_type)

    def refer(self, refer_to: str | Uri, *, referred_by: str | None = None) -> Request:
        """REFER for a transfer (RFC 3515): Refer-To, optionally Referred-By (RFC 3892)."""
        target = str(refer_to)
        extra = [("Refer-To", target if target.startswith("<") else f"<{target}>")]
        if referred_by is not None:
            extra.append(("Referred-By", referred_by))
        return self.create_request("REFER", headers=extra)

    def request_target(self) -> tuple[Uri, list[str]]:
        """Request-URI and Route values for the next request (12.2.1.1).

        Loose routing: the remote target is the Request-URI and the route set
        the Route.  Strict routing (first route without ;lr): the first route's
        URI (without parameters a Request-URI may not hold) is the Request-URI,
        and the rest of the route set plus the remote target is the Route.
        """
        routes = [str(route) for route in self.route_set]
        if not self.route_set or _is_loose(self.route_set[0].uri):
            return self.remote_target, routes
        first = self.route_set[0].uri
        if isinstance(first, SipUri):
            params = {k: v for k, v in first.params.items() if k not in NOT_IN_REQUEST_URI}
            first = first.replace(params=params, headers={})
        return first, routes[1:] + [f"<{self.remote_target}>"]

    def _build(
        self,
        method: str,
        seq: int,
        body: bytes,
        content_type: str | None,
        extra: Iterable[tuple[str, str]],
        branch: str | None,
    ) -> Request:
        uri, routes = self.request_target()
        if self._from_to is None:  # both fixed for the dialog's life (12.2.1.1): built once
            remote = self.remote_uri
            if self.id.remote_tag is not None:
                remote = remote.with_tag(self.id.remote_tag)
            self._from_to = (str(self.local_uri.with_tag(self.id.local_tag)), str(remote))
        via = f"SIP/2.0/{self.local.transport} {self.local.sent_by};branch={branch or new_branch()}"
        # Canonical names, and values that are ours or were parsed from the peer's messages
        # (whose parser refused CR/LF): only what the caller adds is checked again.
        headers: list[tuple[str, str]] = [
            checked_header("Via", via),
            ("Max-Forwards", _MAX_FORWARDS),
            ("From", self._from_to[0]),
            ("To", self._from_to[1]),
            ("Call-ID", self.id.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        headers += [("Route", route) for route in routes]
        if method in CARRIES_CONTACT:
            headers.append(checked_header("Contact", self.local.contact))
        headers += [checked_header(name, value) for name, value in extra]
        if body and content_type:
            headers.append(checked_header("Content-Type", content_type))
        return Request(method, uri, Headers._trusted(headers), body)


def _scheme(uri: Uri) -> str:
    return getattr(uri, "scheme", "").lower()


def _is_loose(uri: Uri) -> bool:
    return isinstance(uri, SipUri) and "lr" in uri.params


# ---- requests outside a dialog -------------------------------------------------


def build_cancel(invite: Request) -> Request:
    """CANCEL for a pending INVITE (9.1).

    Same Request-URI, Call-ID, From, To and CSeq number as the INVITE, one Via
    equal to the INVITE's top Via (so it matches the same server transaction),
    and the INVITE's Route header fields.
    """
    if invite.method != "INVITE":
        raise LocalProtocolError("only an INVITE is cancelled")
    return transaction.build_cancel(invite)


def build_non2xx_ack(invite: Request, response: Response) -> Request:
    """ACK for a 300-699 to INVITE (17.1.1.3): the INVITE's top Via and Route, the response's To."""
    if not 300 <= response.status <= 699:
        raise LocalProtocolError("build_non2xx_ack() takes a 300-699 response")
    return transaction.build_ack(invite, response)


# ---- UAS 2xx retransmission (13.3.1.4) -----------------------------------------


class RetransmitAction(enum.Enum):
    WAIT = "wait"  # nothing due yet
    RETRANSMIT = "retransmit"  # send the 2xx again
    GIVE_UP = "give_up"  # 64*T1 without ACK: end the session with BYE
    DONE = "done"  # the ACK came (or we gave up already)


@dataclass(slots=True)
class AnswerRetransmitter:
    """Timers for the UAS's 2xx to INVITE until the ACK arrives (13.3.1.4).

    The 2xx is re-sent after T1, then at intervals doubling up to T2; after
    64*T1 without an ACK the dialog stays confirmed but the session should be
    ended with a BYE.  `now` is monotonic seconds.
    """

    started: float
    t1: float = T1
    t2: float = T2
    acked: bool = False
    gave_up: bool = False
    _interval: float = 0.0
    _next: float = 0.0

    def __post_init__(self) -> None:
        self._interval = self.t1
        self._next = self.started + self.t1

    @property
    def give_up_at(self) -> float:
        return self.started + 64 * self.t1

    def next_deadline(self) -> float | None:
        """When on_timer() next has something to do, or None when finished."""
        if self.acked or self.gave_up:
            return None
        return min(self._next, self.give_up_at)

    def ack_received(self) -> None:
        self.acked = True

    def on_timer(self, now: float) -> RetransmitAction:
        if self.acked or self.gave_up:
            return RetransmitAction.DONE
        if now >= self.give_up_at:
            self.gave_up = True
            return RetransmitAction.GIVE_UP
        if now < self._next:
            return RetransmitAction.WAIT
        self._interval = min(2 * self._interval, self.t2)
        self._next += self._interval
        while self._next <= now:  # a late timer sends one copy, not a burst
            self._next += self._interval
        return RetransmitAction.RETRANSMIT


# ---- the dialog table ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InviteOutcome:
    """What a response to our INVITE did: the dialog it hit, early dialogs it ended."""

    dialog: Dialog | None
    terminated: tuple[Dialog, ...] = ()


class DialogSet:
    """All dialogs of one user agent, keyed by `DialogId`."""

    def __init__(self) -> None:
        self._dialogs: dict[DialogId, Dialog] = {}

    def __len__(self) -> int:
        return len(self._dialogs)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def __contains__(self, dialog_id: object) -> bool:
        return dialog_id in self._dialogs

    def add(self, dialog: Dialog) -> Dialog:
        self._dialogs[dialog.id] = dialog
        return dialog

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def remove(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.pop(dialog_id, None)

    def find_for_request(self, request: Request) -> Dialog | None:
        """The dialog of an incoming in-dialog request: (Call-ID, To tag, From tag) (12.2.2)."""
        local_tag = request.to_tag
        if local_tag is None:
            return None
        return self._dialogs.get(DialogId(request.call_id, local_tag, request.from_tag))

    def find_for_response(self, response: Response) -> Dialog | None:
        """The dialog of a response to our request: (Call-ID, From tag, To tag) (12.1.2)."""
        local_tag = response.from_tag
        if local_tag is None:
            return None
        return self._dialogs.get(DialogId(response.call_id, local_tag, response.to_tag))

    def siblings(self, call_id: str, local_tag: str) -> list[Dialog]:
        """All dialogs one (possibly forked) request of ours created."""
        return [
            d
            for d in self._dialogs.values()
            if d.id.call_id == call_id and d.id.local_tag == local_tag
        ]

    def invite_response(
        self, invite: Request, response: Response, local: LocalEndpoint, *, over_tls: bool = False
    ) -> InviteOutcome:
        """Apply a response to our initial INVITE, creating dialogs per fork (12.1.2, 13.2.2.4)."""
        local_tag = invite.from_tag or ""
        status = response.status
        if status >= 300:
            return InviteOutcome(None, self._end_early(invite.call_id, local_tag, None))
        if status < 101 or response.to_tag is None:
            return InviteOutcome(None)
        dialog = self.find_for_response(response)
        if dialog is None or (dialog.ended_early and status >= 200):
            siblings = self.siblings(invite.call_id, local_tag)
            answered = any(d.state is DialogState.CONFIRMED for d in siblings)
            if answered and status < 200:
                return InviteOutcome(None)  # a late 1xx from a branch that lost the race
            dialog = self.add(Dialog.uac(invite, response, local, over_tls=over_tls))
            dialog.redundant = answered
        else:
            dialog.receive_response(response)
        if status >= 200 and not dialog.redundant:
            return InviteOutcome(dialog, self._end_early(invite.call_id, local_tag, dialog))
        return InviteOutcome(dialog)

    def _end_early(self, call_id: str, local_tag: str, keep: Dialog | None) -> tuple[Dialog, ...]:
        ended = []
        for dialog in self.siblings(call_id, local_tag):
            if dialog is not keep and dialog.state is DialogState.EARLY:
                dialog.state, dialog.ended_early = DialogState.TERMINATED, True
                ended.append(dialog)
        return tuple(ended)

    def purge(self) -> list[Dialog]:
        """Drop and return the terminated dialogs."""
        gone = [d for d in self._dialogs.values() if d.state is DialogState.TERMINATED]
        for dialog in gone:
            del self._dialogs[dialog.id]
        return gone
