"""Session timers (RFC 4028) as the answering side of a dialog: what to answer, when to refresh.

Why: SIP has no keep-alive of its own. A phone that loses power mid-call sends no BYE, and a
call on hold sends no media for the media timeout to notice, so such a call would hold its
trunk slot for good. A phone or carrier that asks for session timers (Session-Expires in its
INVITE) promises a refresh (re-INVITE or UPDATE) every half interval; when none comes, the
session is over. Asterisk (`timers=accept`) and FreeSWITCH answer such requests; so does
DeskPBX. It does not impose timers on a peer that did not ask.

Pure functions and a small state object fed the current time: the B2BUA (pbx.b2bua_session)
sends what they decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pbx.sip.errors import ParseError
from pbx.sip.message import Request

MIN_SE = 90
"""Seconds: the smallest session interval RFC 4028 (section 4) lets anyone ask for."""

OPTION_TAG = "timer"


class Refresher(Enum):
    """Who sends the refreshes, seen from this dialog's side (not the header's uac/uas)."""

    THEM = "them"
    US = "us"


@dataclass(frozen=True, slots=True)
class SessionExpires:
    interval: int
    refresher: str | None  # "uac", "uas" or None, as the header says


def parse_session_expires(value: str) -> SessionExpires:
    """`Session-Expires: 1800;refresher=uac` (RFC 4028 section 4); ParseError (400) if bad."""
    delta, *params = (part.strip() for part in value.split(";"))
    if not delta.isdigit() or len(delta) > 10:
        raise ParseError(f"bad Session-Expires {value!r}")
    refresher = None
    for param in params:
        name, _, given = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = given.strip().lower()
            if refresher not in ("uac", "uas"):
                raise ParseError(f"bad Session-Expires refresher {given!r}")
    return SessionExpires(int(delta), refresher)


def parse_min_se(value: str | None) -> int:
    """`Min-SE: 90` (RFC 4028 section 5); 0 when absent; ParseError (400) if bad."""
    if value is None:
        return 0
    delta = value.split(";")[0].strip()
    if not delta.isdigit() or len(delta) > 10:
        raise ParseError(f"bad Min-SE {value!r}")
    return int(delta)


def option_tags(request: Request, header: str) -> set[str]:
    return {tag.strip().lower() for tag in request.headers.getall(header)}


@dataclass(frozen=True, slots=True)
class Agreed:
    """A session timer both sides hold to: its interval and who refreshes."""

    interval: int
    refresher: Refresher

    def response_headers(self) -> list[tuple[str, str]]:
        """The headers of our 2xx to the request that set it (RFC 4028 section 9): we are
        that request's UAS, so "uac" names the peer; a peer that refreshes is told with
        Require: timer."""
        side = "uac" if self.refresher is Refresher.THEM else "uas"
        headers = [("Session-Expires", f"{self.interval};refresher={side}")]
        if self.refresher is Refresher.THEM:
            headers.append(("Require", OPTION_TAG))
        return headers

    def request_headers(self) -> list[tuple[str, str]]:
        """The headers of a re-INVITE or UPDATE we send on the dialog (section 7.4): we are
        that request's UAC, so "uac" names us; the refresher stays who it was."""
        side = "uac" if self.refresher is Refresher.US else "uas"
        return [
            ("Session-Expires", f"{self.interval};refresher={side}"),
            ("Supported", OPTION_TAG),
        ]

    @property
    def give_up_after(self) -> float:
        """Seconds after a refresh by which the next must have come (section 10: a BYE goes
        out min(32, interval / 3) before the session would expire)."""
        return self.interval - min(32.0, self.interval / 3)

    @property
    def refresh_after(self) -> float:
        """Seconds after a refresh at which we send the next, when we refresh (section 10)."""
        return self.interval / 2


@dataclass(frozen=True, slots=True)
class TooBrief:
    """Answer 422 with this Min-SE (section 9)."""

    min_se: int


def negotiate(request: Request, min_se: int, can_refresh: bool) -> Agreed | TooBrief | None:
    """What to answer a session refresh request (an INVITE, re-INVITE or UPDATE) as its UAS.

    None: no session timer (the request asked for none, or wants us to refresh a peer we
    cannot refresh: `can_refresh` is whether the peer takes UPDATE). The interval is the one
    asked for: a UAS may lower it but never raises it, and ours has no reason to lower it.
    ParseError for a malformed header."""
    value = request.headers.get("Session-Expires")
    if value is None:
        return None
    asked = parse_session_expires(value)
    supported = OPTION_TAG in option_tags(request, "Supported") | option_tags(request, "Require")
    floor = max(min_se, parse_min_se(request.headers.get("Min-SE")))
    if asked.interval < floor:
        if supported:
            return TooBrief(floor)
        # A peer that knows nothing of timers cannot retry after a 422 (errata 1687): the
        # interval is raised instead, and the peer cannot be the refresher.
        asked = SessionExpires(floor, "uas")
    if asked.refresher == "uas" or not supported:
        return Agreed(asked.interval, Refresher.US) if can_refresh else None
    return Agreed(asked.interval, Refresher.THEM)


class SessionTimer:
    """One dialog's session timer on a clock: when the peer's refresh is late, when ours is due."""

    def __init__(self, agreed: Agreed, now: float) -> None:
        self.agreed = agreed
        self.refreshed_at = now
        self.refreshing = False
        """A refresh of ours is out, its answer not yet in."""

    def refreshed(self, agreed: Agreed, now: float) -> None:
        """A refresh succeeded (either side's): the interval starts again, maybe renegotiated."""
        self.agreed = agreed
        self.refreshed_at = now
        self.refreshing = False

    def expired(self, now: float) -> bool:
        """The peer should have refreshed by now (or answered ours): the session is over."""
        return now >= self.refreshed_at + self.agreed.give_up_after

    def refresh_due(self, now: float) -> bool:
        return (
            self.agreed.refresher is Refresher.US
            and not self.refreshing
            and now >= self.refreshed_at + self.agreed.refresh_after
        )
