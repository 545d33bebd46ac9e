"""Transfers: REFER out and in, progress by NOTIFY (RFC 3515, RFC 3891, RFC 5589).

Blind transfer: our REFER names the target; the far end (the transferee)
calls it and reports with NOTIFYs carrying a message/sipfrag status line,
which become `TransferProgress` events. Attended transfer: the Refer-To URI
carries a Replaces header naming our dialog with the target, so the target
swaps that call for the transferee's (RFC 5589 7). The Replaces values are
as the target sees its dialog: to-tag is the target's tag (our remote tag),
from-tag ours (RFC 3891 3).

As the transferee we accept a REFER with 202, emit `TransferRequested`, and
(unless the UA's `follow_refer` is off) call the target ourselves: NOTIFY
100 Trying, then the final status; on success our call with the transferor
ends with BYE once the NOTIFY is answered (RFC 5589 6).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from pbx.sip.errors import SipError
from pbx.sip.message import Request, Response
from pbx.sip.transaction import TransactionKey
from pbx.ua.events import CallState, TransferProgress, TransferRequested, UaError

if TYPE_CHECKING:
    from pbx.ua.agent import UserAgent
    from pbx.ua.call import Call

LIVE = frozenset({CallState.CONNECTED, CallState.ON_HOLD})


def replacing_target(other: Call) -> str:
    """The Refer-To URI that makes `other`'s far end replace its call with us."""
    if other.dialog is None or other.dialog.id.remote_tag is None:
        raise UaError("the other call has no confirmed dialog to replace")
    did = other.dialog.id
    replaces = f"{did.call_id};to-tag={did.remote_tag};from-tag={did.local_tag}"
    target = str(other.dialog.remote_target).split("?", 1)[0]
    return f"{target}?Replaces={quote(replaces, safe='')}"


async def refer(call: Call, target: str) -> int:
    """Send REFER in `call`'s dialog; the final status (202), or UaError when refused."""
    if call.state not in LIVE or call.dialog is None:
        raise UaError(f"cannot transfer a call that is {call.state.value}")
    request = call.dialog.refer(target, referred_by=f"<{call.ua.account.aor}>")
    response = await call.ua.transact(request, dialog=call.dialog)
    status = 408 if response is None else response.status
    if status >= 300:
        reason = "no answer" if response is None else response.reason
        call.ua.emit(TransferProgress(call, status, reason))
        raise UaError(f"transfer refused: {status} {reason}", status)
    return status


def on_notify(call: Call, request: Request, tx: TransactionKey | None) -> None:
    """A NOTIFY in our dialog: for Event: refer, its sipfrag is the transfer's progress."""
    call.ua.reply(tx, request.make_response(200))
    event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
    if event != "refer":
        return
    status, reason = sipfrag_status(request.body)
    if status is not None:
        call.ua.emit(TransferProgress(call, status, reason))


def on_refer(call: Call, request: Request, tx: TransactionKey | None) -> None:
    refer_to = request.headers.get("Refer-To")
    if not refer_to:
        call.ua.reply(tx, request.make_response(400, "Missing Refer-To"))
        return
    call.ua.reply(tx, request.make_response(202))
    target, replaces = split_refer_to(refer_to)
    call.ua.emit(TransferRequested(call, target, replaces))
    if call.ua.follow_refer:
        call.ua.spawn(follow(call.ua, call, target, replaces))


def notify(
    call: Call, status: int, reason: str, final: bool
) -> asyncio.Future[Response | None] | None:
    """NOTIFY the transferor with a sipfrag status line (RFC 3515 2.4.4, 2.4.5)."""
    if call.dialog is None or call.ended:
        return None
    state = "terminated;reason=noresource" if final else "active;expires=60"
    try:
        request = call.dialog.create_request(
            "NOTIFY",
            body=f"SIP/2.0 {status} {reason}\r\n".encode(),
            content_type="message/sipfrag;version=2.0",
            headers=[("Event", "refer"), ("Subscription-State", state)],
        )
    except SipError:
        return None
    return call.ua.send_request(request, dialog=call.dialog)


async def follow(ua: UserAgent, call: Call, target: str, replaces: str | None) -> None:
    """Call the REFER target for the transferor on `call` and report back."""
    notify(call, 100, "Trying", False)
    extra = [("Replaces", replaces)] if replaces is not None else []
    extra.append(("Referred-By", f"<{call.remote_uri}>"))
    new = await ua.call(target, headers=extra)
    state = await new.wait_for(CallState.CONNECTED, CallState.ON_HOLD, timeout=60.0)
    if state is CallState.ENDED:
        notify(call, new.status or 487, new.reason or "Failed", True)
        return
    notified = notify(call, 200, "OK", True)
    if notified is not None:
        await asyncio.wait([notified], timeout=5.0)
    await call.hangup()


def sipfrag_status(body: bytes) -> tuple[int | None, str]:
    """Status and reason of a message/sipfrag status line (RFC 3420), e.g. SIP/2.0 200 OK."""
    line = body.decode("utf-8", "replace").strip().splitlines()[:1]
    parts = line[0].split(" ", 2) if line else []
    if len(parts) >= 2 and parts[0].upper() == "SIP/2.0" and parts[1].isdigit():
        return int(parts[1]), parts[2] if len(parts) > 2 else ""
    return None, ""


def split_refer_to(value: str) -> tuple[str, str | None]:
    """The Refer-To URI without its headers, and the unescaped Replaces header if any."""
    uri = value.strip()
    if uri.startswith("<"):
        uri = uri[1 : uri.find(">")] if ">" in uri else uri[1:]
    base, _, headers = uri.partition("?")
    replaces = None
    for item in headers.split("&"):
        name, _, val = item.partition("=")
        if name.lower() == "replaces" and val:
            replaces = unquote(val)
    return base, replaces
