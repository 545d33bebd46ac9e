"""Banning the addresses that guess passwords: a source whose digest credentials keep
failing is ignored for a while.

Why: a PBX reachable from the internet is found within hours by SIP scanners that try
extension after extension and password after password (the "friendlyscanner" traffic
every Asterisk admin knows). Each guess costs a digest check, and a lucky one costs the
office its phone bill. 3CX bans an address after a number of failed authentications,
Asterisk admins run fail2ban on its log, Kamailio has pike and htable bans; DeskPBX does
it itself: after `after` failed authentications within `window` seconds, everything from
that address is dropped unanswered for `seconds` (answering would tell the scanner it was
heard). A wrong password typed into one phone trips it too, which is what those tools do;
the log says which address was banned and until when, and the ban ends by itself.

Only guesses count: credentials whose response does not match (a wrong password or an
unknown user, which look the same on the wire). A stale nonce, a replayed count or a
first request without credentials is normal traffic. Loopback addresses are exempt by
default: the desktop softphone registers from the same machine.

Sans-IO: time comes in as `now` (monotonic seconds). Memory is bounded: at most
`MAX_TRACKED` addresses are followed; past that the oldest are forgotten first.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from pbx.sip.digest_server import GUESSES, AuthStatus

__all__ = ["AuthBans", "LOOPBACK"]

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1")
MAX_TRACKED = 10_000


class AuthBans:
    """Failed-authentication counts per source address, and the bans they led to."""

    def __init__(
        self,
        after: int = 20,
        window: float = 60.0,
        seconds: float = 600.0,
        exempt: Iterable[str] = LOOPBACK,
    ) -> None:
        if after < 0 or window <= 0 or seconds <= 0:
            raise ValueError("a ban needs after >= 0 (0: off), window > 0 and seconds > 0")
        self.after = after
        self.window = window
        self.seconds = seconds
        self.exempt = frozenset(exempt)
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._banned: dict[str, float] = {}
        """host -> monotonic time the ban ends."""
        self.bans = 0
        self.dropped = 0
        self.on_change: Callable[[str, float | None], None] | None = None
        """Told (host, monotonic end) when a ban starts and (host, None) when one is lifted:
        the server keeps the bans in the database (pbx.store.bans) with it."""

    def __bool__(self) -> bool:
        """False when bans are off: callers skip the work."""
        return self.after > 0

    def record(self, status: AuthStatus, host: str, now: float) -> bool:
        """One failed digest check from `host`: a guess (GUESSES) counts as `failed`, any
        other outcome nothing; True when it bans the host now."""
        return status in GUESSES and self.failed(host, now)

    def failed(self, host: str, now: float) -> bool:
        """Count one failed authentication from `host`; True when it bans the host now."""
        if not self.after or host in self.exempt or self.banned(host, now):
            return False
        times = self._failures.get(host)
        if times is None:
            if len(self._failures) >= MAX_TRACKED:
                self._failures.popitem(last=False)
            times = self._failures[host] = deque(maxlen=self.after)
        else:
            self._failures.move_to_end(host)
        times.append(now)
        if len(times) < self.after or now - times[0] > self.window:
            return False
        del self._failures[host]
        self._banned[host] = until = now + self.seconds
        self.bans += 1
        log.warning(
            "banned %s for %.0f s after %d failed authentications within %.0f s",
            host, self.seconds, self.after, self.window,
        )  # fmt: skip
        if self.on_change is not None:
            self.on_change(host, until)
        return True

    def restore(self, host: str, seconds_left: float, now: float) -> None:
        """A ban kept from before a restart (pbx.store.bans), ending `seconds_left` from now."""
        if seconds_left > 0 and host not in self.exempt:
            self._banned[host] = now + seconds_left

    def keep_only(self, hosts: Iterable[str]) -> list[str]:
        """Lift the bans whose hosts are not in `hosts` (the database's list, where
        `deskpbx ban lift` from another process removed them); the hosts lifted."""
        kept = set(hosts)
        lifted = [host for host in self._banned if host not in kept]
        for host in lifted:
            del self._banned[host]
            self._failures.pop(host, None)
            log.warning("ban of %s lifted from the command line", host)
        return lifted

    def banned(self, host: str, now: float) -> bool:
        """Whether traffic from `host` is to be dropped at `now` (an ended ban is forgotten)."""
        until = self._banned.get(host)
        if until is None:
            return False
        if now < until:
            return True
        del self._banned[host]
        log.info("ban of %s ended", host)
        return False

    def drop(self, host: str, now: float) -> bool:
        """`banned`, counting what is dropped: the transport's check on every message."""
        if self._banned and self.banned(host, now):
            self.dropped += 1
            return True
        return False

    def lift(self, host: str) -> bool:
        """End `host`'s ban now (an administrator's call), and forget its failures; False if
        it was not banned."""
        self._failures.pop(host, None)
        if self._banned.pop(host, None) is None:
            return False
        log.warning("ban of %s lifted", host)
        if self.on_change is not None:
            self.on_change(host, None)
        return True

    def active(self, now: float) -> dict[str, float]:
        """Banned addresses and the seconds each ban has left."""
        return {host: until - now for host, until in self._banned.items() if until > now}

    def stats(self, now: float) -> dict[str, object]:
        return {
            "after": self.after,
            "window": self.window,
            "seconds": self.seconds,
            "bans": self.bans,
            "dropped": self.dropped,
            "banned": sorted(self.active(now)),
        }
