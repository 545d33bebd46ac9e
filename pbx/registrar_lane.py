"""The REGISTER fast lane: a plain UDP REGISTER answered without the generic machinery.

Why: a registrar's load is almost all REGISTERs of one shape (a phone refreshing its
binding, challenged once, RFC 3261 §10.2, §22.4), and Kamailio-style registrars answer
them statelessly. The full path pays, per REGISTER, for the transaction object and its
actions and events (§17.2.2), the UAS policy checks of §8.2 (which can only pass for
such a request) and the endpoint's flush. This lane takes a REGISTER it fully
understands straight from the datagram to `Registrar.handle` (§10.3, the same code the
full path calls, so bindings, notifications, nonce replay checks and logs are the
full path's) and keeps only what §17.2.2 asks of a non-INVITE server transaction over
UDP: the final response's bytes, resent as they are to a retransmission (same branch
and sent-by, §17.2.3) for 64*T1.

A REGISTER without credentials, the first of each registration, is read from its header
lines by pbx.registrar_challenge and challenged without a parsed Request, under the same
rules; anything that reader does not take comes here parsed, as before.

A CANCEL naming a kept answer (same branch and sent-by) names a live transaction (§9.2):
the lane tells the core so (`kept_request`, registered with `SipCore.add_answer_keeper`)
and the CANCEL, which takes the full path, gets 200. A registrar that raises gets its
REGISTER answered 500 (§21.5.1), kept like any answer, and the traceback logged.

Everything else goes to the full path unchanged, so conformance stays the full path's:
TCP (the lane is only wired for UDP), a datagram that does not parse, a body, a header
outside `LANE_HEADERS` or repeated (except Contact), more than one Via, a Via that is not
UDP or has no RFC 3261 branch, a Request-URI that is not a plain `sip:` URI, a CSeq
method other than REGISTER, Max-Forwards 0, any header the validation of §8.2 would
refuse (the lane reads the same typed fields and declines on ParseError), and a request
that matches a live full-path transaction.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from pbx.registrar import Registrar, new_to_tag
from pbx.registrar_challenge import QUICK_HEADERS, FirstRegister, challenge_bytes, first_register
from pbx.sip.core import SipCore, response_destination, same_request, server_error
from pbx.sip.errors import ParseError
from pbx.sip.headers import Via
from pbx.sip.message import Request, Response, parse_message
from pbx.sip.transaction import ServerKey, is_rfc3261_branch
from pbx.sip.transport import stamp_parsed, stamped_via
from pbx.sip.uri import SipUri

log = logging.getLogger(__name__)

Address = tuple[str, int]

LANE_HEADERS = QUICK_HEADERS | {"Authorization"}
"""Header fields a REGISTER may carry and still take the lane: the registrar reads them or
no UAS check looks at them (Allow, Supported, User-Agent)."""

_REPEATABLE = frozenset({"Contact"})

_PREFIX = b"REGISTER sip:"


class LaneAnswer(NamedTuple):
    """What to send for one datagram; `status` is 0 for a resent answer (a retransmission)."""

    data: bytes
    destination: Address
    status: int


_LEFT = LaneAnswer(b"", ("", 0), -1)
"""RegisterLane._prior's answer for a request the full path has: the lane leaves it."""


class RegisterLane:
    """Answers common-shape UDP REGISTERs itself; `handle` returns None for the rest."""

    def __init__(
        self,
        registrar: Registrar,
        core: SipCore,
        wall: Callable[[], float],
        *,
        lifetime: float | None = None,
    ) -> None:
        self.registrar = registrar
        self.core = core
        self.wall = wall
        self.lifetime = 64 * core.config.t1 if lifetime is None else lifetime
        """Seconds an answer is kept for retransmissions (Timer J, §17.2.2)."""
        self._answers: dict[tuple[str, str, int], tuple[float, bytes, Address]] = {}
        """(branch, sent-by host, port) -> (expiry, answer bytes, destination). Plain tuples
        of strings, bytes and numbers, like the keys and `_expiry`'s entries: the cyclic
        collector stops tracking such tuples once they survive a collection, so the answers
        kept for 32 s (~150,000 at 2,300 registrations/s) are not walked again by every
        older-generation collection, whose pauses would outlast the socket's buffer."""
        self._datagrams: dict[int, tuple[tuple[str, str, int], int]] = {}
        """hash(request datagram) -> (its answer's key, its length): a retransmission (the
        same bytes again, §17.1.2.2) finds its kept answer without being parsed, so a burst
        of them costs little just when the PBX is behind (what made it late is what made
        the phones retransmit)."""
        self._expiry: deque[tuple[float, tuple[str, str, int], int]] = deque()
        self.answered = 0
        self.challenged = 0
        """Of `answered`, the 401s to a first REGISTER read without a Request."""
        self.resent = 0
        core.add_answer_keeper(self.kept_request)

    def __len__(self) -> int:
        return len(self._answers)

    def handle(self, data: bytes, source: Address, now: float) -> LaneAnswer | None:
        """The answer to one UDP datagram from `source`, or None: the full path takes it."""
        if not data.startswith(_PREFIX):
            return None
        self._expire(now)
        fingerprint = hash(data)
        seen = self._datagrams.get(fingerprint)
        if seen is not None:
            kept = self._resend(seen, data)
            if kept is not None:
                return kept
        if b"uthorization" not in data:  # no credentials: most likely a first REGISTER
            first = first_register(data)
            if first is not None:
                challenged = self._challenge(first, data, fingerprint, source, now)
                if challenged is not None:
                    return challenged
        request = _understood(data)
        if request is None:
            return None
        key = _key(request.via)
        prior = self._prior(key)
        if prior is not None:
            return None if prior is _LEFT else prior
        stamp_parsed(request, source)
        try:
            response = self.registrar.handle(request, source, "UDP", now, self.wall())
        except Exception:  # the registrar's bug: answered, not left to time out (§21.5.1)
            response = _server_error(request)
        destination = response_destination(request.via, source, "UDP")
        answer = bytes(response)
        return self._keep(key, answer, destination, response.status, fingerprint, len(data), now)

    def _challenge(
        self, first: FirstRegister, data: bytes, fingerprint: int, source: Address, now: float
    ) -> LaneAnswer | None:
        """The 401 to a REGISTER without credentials read by pbx.registrar_challenge: what
        the parsed path below would send (the same Via stamping, kept-answer and live
        transaction checks, and the registrar's challenges), without a Request. None: the
        parsed path decides (a live transaction has it, or the registrar failed)."""
        via = first.via
        key = _key(via)
        prior = self._prior(key)
        if prior is not None:
            return None if prior is _LEFT else prior
        try:
            challenges = self.registrar.challenges(now)
        except Exception:  # the parsed path asks the registrar again and answers 500
            return None
        stamped = stamped_via(via, source)
        text = None if stamped is None else str(stamped)
        answer = challenge_bytes(first.copied, text, new_to_tag(), challenges)
        destination = response_destination(stamped or via, source, "UDP")
        self.challenged += 1
        return self._keep(key, answer, destination, 401, fingerprint, len(data), now)

    def _prior(self, key: tuple[str, str, int]) -> LaneAnswer | None:
        """What a request with `key` gets before any work: its kept answer again, _LEFT when
        a live full-path transaction has it (it stays there), None when it is new."""
        kept = self._answers.get(key)
        if kept is not None:
            return self._resent(kept)
        if self.core.has_transaction(ServerKey(key[0], (key[1], key[2]), "REGISTER")):
            return _LEFT
        return None

    def _keep(
        self, key: tuple[str, str, int], answer: bytes, destination: Address, status: int,
        fingerprint: int, length: int, now: float,
    ) -> LaneAnswer:  # fmt: skip
        """Keep `answer` for the request's retransmissions until Timer J (§17.2.2); the
        request datagram's hash and length find it again without a parse."""
        expires = now + self.lifetime
        self._answers[key] = (expires, answer, destination)
        self._datagrams[fingerprint] = (key, length)
        self._expiry.append((expires, key, fingerprint))
        self.answered += 1
        return LaneAnswer(answer, destination, status)

    def _resend(self, seen: tuple[tuple[str, str, int], int], data: bytes) -> LaneAnswer | None:
        """The kept answer for a datagram whose fingerprint matches one answered: the same
        length and its branch in it too, so only the identical request (a retransmission
        sends the same bytes) can match; None to parse it after all."""
        key, length = seen
        kept = self._answers.get(key)
        if kept is None or not same_request(data, length, key[0]):
            return None
        return self._resent(kept)

    def _resent(self, kept: tuple[float, bytes, Address]) -> LaneAnswer:
        """A kept answer going out again (status 0: counted once, when first sent)."""
        self.resent += 1
        return LaneAnswer(kept[1], kept[2], 0)

    def kept_request(self, cancel: ServerKey, now: float) -> ServerKey | None:
        """The REGISTER a CANCEL with key `cancel` names while its answer is kept (§9.2:
        same branch and sent-by, any method), or None."""
        kept = self._answers.get((cancel.branch, cancel.sent_by[0], cancel.sent_by[1]))
        if kept is None or kept[0] <= now:
            return None
        return cancel._replace(method="REGISTER")

    def _expire(self, now: float) -> None:
        """Forget answers whose 64*T1 has passed (oldest first: `now` only grows)."""
        expiry, answers = self._expiry, self._answers
        while expiry and expiry[0][0] <= now:
            deadline, key, fingerprint = expiry.popleft()
            kept = answers.get(key)
            if kept is not None and kept[0] == deadline:
                del answers[key]
                seen = self._datagrams.get(fingerprint)
                if seen is not None and seen[0] == key:
                    del self._datagrams[fingerprint]


def _key(via: Via) -> tuple[str, str, int]:
    """The kept-answer key of a request with top Via `via`: branch and sent-by (§17.2.3)."""
    host, port = via.sent_by
    return (via.branch or "", host.lower(), port)


def _server_error(request: Request) -> Response:
    """500 for a REGISTER the registrar failed on; the traceback goes to the log."""
    log.exception("registrar failed on REGISTER %s", request.call_id)
    return server_error(request)


def _understood(data: bytes) -> Request | None:
    """The parsed REGISTER when every part of it is one the lane handles as the full path
    would; None otherwise (see the module docstring for the rules)."""
    try:
        request = parse_message(data)
        if not isinstance(request, Request) or request.method != "REGISTER" or request.body:
            return None
        headers = request.headers
        index = headers.first_values()  # built once, read again by every typed field below
        if not LANE_HEADERS.issuperset(index):
            return None
        if len(index) != len(headers):  # a header repeated: only Contact may be
            for name, count in headers.name_counts().items():
                if count > 1 and name not in _REPEATABLE:
                    return None
        if "," in index.get("Via", ","):  # one Via value, present
            return None
        uri = request.uri
        if not isinstance(uri, SipUri) or uri.scheme != "sip" or uri.headers:
            return None
        via = request.via
        if via.transport.upper() != "UDP" or not is_rfc3261_branch(via.branch):
            return None
        if request.cseq.method != "REGISTER" or request.max_forwards == 0:
            return None
        # the typed fields validate() parses (§8.2): a ParseError sends it to the full path
        # (`vias` is the top Via here: one Via value, no comma, read above)
        request.from_  # noqa: B018
        request.to  # noqa: B018
        request.call_id  # noqa: B018
        request.contacts  # noqa: B018
        request.expires  # noqa: B018
    except ParseError:
        return None
    return request
