"""Call admission: a ceiling on calls in progress and on new calls per second.

Why: the box a small office runs the PBX on has a ceiling (the RTP relay's packets per
second, the CPU), and past it every call's audio suffers, not just the newest one's. A
busy hour, a dialer gone wrong or a scanner flooding INVITEs should get a clear refusal
instead: 503 Service Unavailable with Retry-After (RFC 3261 §21.5.4), which phones and
carriers understand as "try later or elsewhere". FreeSWITCH's `max-sessions` and
`sessions-per-second` and Asterisk's `maxcalls` are the settings users know; `deskpbx
serve --max-calls N --max-call-rate N` are ours. 0, the default, sets no limit.

The rate is a token bucket holding one second's worth of calls, so a burst of up to
`max_call_rate` new calls is taken at once and the average over any longer time stays at
or below the rate. Time comes in as `now` (monotonic seconds): no clock is read here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CallAdmission", "CallLimitReached", "Refusal"]


class CallLimitReached(Exception):
    """A new call the PBX refused (too many in progress, or too many per second): the HTTP
    API answers 503 for it."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The 503 a refused call gets, and the Retry-After seconds it carries."""

    reason: str
    retry_after: int

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("Retry-After", str(self.retry_after))]


FULL = Refusal("Maximum Calls In Progress", 5)
TOO_FAST = Refusal("Call Rate Exceeded", 1)


class CallAdmission:
    """Decides whether one more call may start; counts what it refused."""

    def __init__(self, max_calls: int = 0, max_call_rate: float = 0.0) -> None:
        if max_calls < 0 or max_call_rate < 0:
            raise ValueError("call limits are 0 (none) or positive")
        self.max_calls = max_calls
        self.max_call_rate = max_call_rate
        self._burst = max(1.0, max_call_rate)
        self._tokens = self._burst
        self._last: float | None = None
        self.refused_full = 0
        self.refused_rate = 0

    def refuse(self, in_progress: int, now: float) -> Refusal | None:
        """None when a new call may start now (and it is counted against the rate), else
        why not. A call refused for the ceiling takes nothing from the rate."""
        if self.max_calls and in_progress >= self.max_calls:
            self.refused_full += 1
            return FULL
        if self.max_call_rate:
            if self._last is not None:
                elapsed = max(0.0, now - self._last)
                self._tokens = min(self._burst, self._tokens + elapsed * self.max_call_rate)
            self._last = now
            if self._tokens < 1.0:
                self.refused_rate += 1
                return TOO_FAST
            self._tokens -= 1.0
        return None

    def stats(self) -> dict[str, float | int]:
        """The limits and what they refused since start (for the status API and logs)."""
        return {
            "max_calls": self.max_calls,
            "max_call_rate": self.max_call_rate,
            "refused_full": self.refused_full,
            "refused_rate": self.refused_rate,
        }
