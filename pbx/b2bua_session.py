"""Session timers on the B2BUA's dialogs with phones and carriers (RFC 4028; pbx.sip.session_timer).

A phone or carrier whose INVITE carries Session-Expires gets the timer it asked for on its own
dialog: our 2xx confirms the interval and who refreshes. Each leg of a DeskPBX call is its own
dialog, so the timer lives there and the far leg never sees it: the far phone is not asked to
refresh, and a refresh needs nothing from it (an UPDATE without a body is answered here).

- When the phone refreshes (re-INVITE or UPDATE answered 2xx) the interval starts again; when
  no refresh comes by min(32, interval / 3) before the end, the call is hung up on both legs
  as the system (section 10), its CDR written as for any other hangup.
- When we refresh (the peer asked us to, or cannot itself), an UPDATE without a body goes out
  every half interval; a failed one lets the session run out.
- Requests we send on such a dialog (a re-INVITE passed on from the far leg, a transfer's
  re-INVITE) carry the timer too, and the peer's 2xx says whether it still runs (7.2).

Timers are keyed by dialog, not by call: a transfer may move a dialog from one call to
another, and the B2BUA's dialog table says which call holds it when the time comes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pbx.call import Side
from pbx.periodic import Periodic
from pbx.sip.dialog import DialogId
from pbx.sip.errors import LocalProtocolError, ParseError
from pbx.sip.events import RequestReceived
from pbx.sip.message import Request, Response
from pbx.sip.session_timer import (
    OPTION_TAG,
    Agreed,
    Refresher,
    SessionTimer,
    TooBrief,
    negotiate,
    option_tags,
    parse_session_expires,
)
from pbx.sip.transport import NextHop
from pbx.store import HangupSide

if TYPE_CHECKING:
    from pbx.b2bua import B2bua
    from pbx.call import Call

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0
"""Seconds between looks at the timers."""

REFRESHES = frozenset({"INVITE", "UPDATE"})


def takes_update(request: Request) -> bool:
    """The peer lists UPDATE in Allow: we can refresh it without touching its media."""
    return "UPDATE" in {method.strip().upper() for method in request.headers.getall("Allow")}


class SessionTimers:
    """The session timers of the B2BUA's dialogs, driven by the loop's clock."""

    def __init__(self, b2bua: B2bua, min_se: int) -> None:
        self.b2bua = b2bua
        self.min_se = min_se
        """Our Min-SE: a shorter interval asked for is answered 422 (RFC 4028 section 9)."""
        self.timers: dict[DialogId, SessionTimer] = {}
        self._offered: dict[str, Agreed] = {}  # call label -> the timer its 2xx will confirm
        self.looks = Periodic(CHECK_INTERVAL, lambda: self.check(b2bua.sip.now()), "session timers")
        self.ended = 0
        """Calls ended because a session timer ran out, since start (status and metrics)."""

    def start(self) -> None:
        self.looks.start()

    def stop(self) -> None:
        self.looks.stop()

    def table_size(self) -> int:
        """Timers and timers offered but not yet confirmed (for leak checks)."""
        return len(self.timers) + len(self._offered)

    # ---- the loop's side --------------------------------------------------------------------

    def check(self, now: float) -> list[Call]:
        """End the calls whose peer let its session run out, send the refreshes that are due;
        the calls ended."""
        b2bua, ended = self.b2bua, []
        for dialog_id, timer in list(self.timers.items()):
            found = b2bua._by_dialog.get(dialog_id)
            if found is None or found[0].ended:
                del self.timers[dialog_id]  # the call ended, or the dialog left it
                continue
            call, side = found
            if timer.expired(now):
                del self.timers[dialog_id]
                log.warning("[%s] session timer of the %s ran out (%d s): hanging up",
                            call.label, side.value, timer.agreed.interval)  # fmt: skip
                self.ended += 1
                ended.append(call)
                b2bua._hangup(call, side, HangupSide.SYSTEM)
            elif timer.refresh_due(now):
                self._refresh(call, side, timer)
        return ended

    def _refresh(self, call: Call, side: Side, timer: SessionTimer) -> None:
        """An UPDATE without a body (RFC 3311): the session's refresh, no media touched."""
        dialog, peer = call.dialog(side), call.peer(side)
        if dialog is None or peer is None:
            return
        try:
            update = dialog.create_request("UPDATE", headers=timer.agreed.request_headers())
        except LocalProtocolError:
            return
        timer.refreshing = True
        self.b2bua.sip.send_request(update, NextHop(*peer.destination, peer.transport))

    def _negotiate(self, request: Request) -> Agreed | TooBrief | None:
        """negotiate() for a request of a peer; most carry no Session-Expires, and those
        are done with before the Allow header is read (the call set-up path)."""
        if request.headers.get("Session-Expires") is None:
            return None
        return negotiate(request, self.min_se, takes_update(request))

    # ---- the initial INVITE ---------------------------------------------------------------

    def on_invite(self, ev: RequestReceived) -> Agreed | None | bool:
        """A new call's INVITE: False once answered 422 (its interval is too brief), else the
        timer its 2xx will confirm (None: no timer). ParseError for a malformed header."""
        outcome = self._negotiate(ev.request)
        if isinstance(outcome, TooBrief):
            self.b2bua._reply(ev, 422, "Session Interval Too Small", too_brief(outcome))
            return False
        return outcome

    def offered(self, call: Call, agreed: Agreed | None) -> None:
        if agreed is not None:
            self._offered[call.label] = agreed

    def answering(self, call: Call, response: Response) -> None:
        """Our 2xx to the call's INVITE goes out: it confirms the timer, which starts now."""
        agreed = self._offered.pop(call.label, None)
        if agreed is None or call.a_dialog is None:
            return
        for name, value in agreed.response_headers():
            response.headers.add(name, value)
        self.timers[call.a_dialog.id] = SessionTimer(agreed, self.b2bua.sip.now())

    def forget(self, call: Call) -> None:
        self._offered.pop(call.label, None)
        for dialog in (call.a_dialog, call.b_dialog):
            if dialog is not None:
                self.timers.pop(dialog.id, None)

    # ---- requests from a peer inside a dialog ---------------------------------------------

    def answered_here(self, ev: RequestReceived, call: Call, side: Side) -> bool:
        """A refresh this side answers itself (True): 422 to an interval too brief, 200 to
        an UPDATE without a body (nothing to pass on to the far leg). Otherwise False, and
        the request is passed on as any other."""
        request = ev.request
        if request.method not in REFRESHES:
            return False
        outcome = self._negotiate(request)
        if isinstance(outcome, TooBrief):
            self.b2bua._reply(ev, 422, "Session Interval Too Small", too_brief(outcome))
            return True
        dialog, peer = call.dialog(side), call.peer(side)
        if request.method != "UPDATE" or request.body or dialog is None or peer is None:
            return False
        response = request.make_response(200)
        response.headers.add("Contact", peer.local.contact)  # UPDATE refreshes the target
        self.refreshed_by_peer(dialog.id, request, response)
        self.b2bua._respond(ev.tx, response)
        return True

    def refreshed_by_peer(self, dialog_id: DialogId, request: Request, response: Response) -> None:
        """Our 2xx to the peer's re-INVITE or UPDATE: a refresh. The timer it now asks for
        (or none) takes over, and the 2xx says so."""
        if request.method not in REFRESHES or not 200 <= response.status < 300:
            return
        outcome = self._negotiate(request)
        timer = self.timers.get(dialog_id)
        if not isinstance(outcome, Agreed):
            if timer is not None and keeps_timer(request):
                outcome = timer.agreed  # a refresh without the header keeps the timer going
            else:
                self.timers.pop(dialog_id, None)
                return
        for name, value in outcome.response_headers():
            response.headers.add(name, value)
        now = self.b2bua.sip.now()
        if timer is None:
            self.timers[dialog_id] = SessionTimer(outcome, now)
        else:
            timer.refreshed(outcome, now)

    # ---- requests we send inside a dialog -------------------------------------------------

    def request_headers(self, dialog_id: DialogId) -> list[tuple[str, str]]:
        """Headers for a re-INVITE or UPDATE we send on this dialog: while its timer runs,
        the request says so, or a peer that answers without it would stop refreshing."""
        timer = self.timers.get(dialog_id)
        return [] if timer is None else timer.agreed.request_headers()

    def on_answer(self, response: Response) -> None:
        """A 2xx from a peer to our re-INVITE or UPDATE: a refresh. Its Session-Expires says
        the timer goes on and who refreshes. Without one (7.2) a peer that refreshed will no
        longer, so its timer stops; one we refresh (a peer that knows nothing of timers
        answers so) goes on: its next silence still ends the call."""
        dialog_id = DialogId.of_response(response)
        timer = self.timers.get(dialog_id)
        if timer is None:
            return
        value = response.headers.get("Session-Expires")
        if value is None:
            if timer.agreed.refresher is Refresher.US:
                timer.refreshed(timer.agreed, self.b2bua.sip.now())
            else:
                del self.timers[dialog_id]
            return
        try:
            answered = parse_session_expires(value)
        except ParseError:
            return  # a malformed header changes nothing; the timer runs out if no refresh comes
        refresher = Refresher.US if answered.refresher == "uac" else Refresher.THEM
        timer.refreshed(Agreed(answered.interval, refresher), self.b2bua.sip.now())


def too_brief(outcome: TooBrief) -> list[tuple[str, str]]:
    """The headers of a 422: the interval we take at least (RFC 4028 section 6)."""
    return [("Min-SE", str(outcome.min_se))]


def keeps_timer(request: Request) -> bool:
    """A refresh without Session-Expires from a peer that still lists the extension: our 2xx
    may put the timer back (section 9), so it goes on."""
    return request.headers.get("Session-Expires") is None and OPTION_TAG in option_tags(
        request, "Supported"
    )
