"""Outbound dialplan: which trunks, in which order, may carry a dialled number.

Theory of operation. Routes are tried in their stored order; the first route
whose pattern matches the dialled digits AND whose permission class the caller
holds is THE route (as in FreePBX, a later route is never a fallback for a
route whose trunks all failed). Its trunk group is ordered by the route's
strategy (priority, round-robin, least-busy); trunks that are disabled, down
(failed qualify or registration) or at their concurrency cap are skipped. The
result is either a `RoutePlan` (ordered `TrunkAttempt`s) or a typed `Refusal`
that becomes the SIP answer and the CDR's reason:

    no route matches the number            -> 404 Not Found
    routes match, caller's class too low   -> 403 Forbidden (permission)
    no enabled trunk in the group          -> 503 No Resource
    every enabled trunk is down            -> 503 Service Down
    every live trunk is at its cap         -> 503 Service Full

Dial patterns follow FreePBX: X = 0-9, Z = 1-9, N = 2-9, [1-5,7] a set, . one
or more of anything, ! zero or more; `prefix|rest` strips the digits before
`|` and `prepend+...` adds digits in front. A pattern starting with `re:` is a
plain regular expression matched against the whole number (its first group,
if any, is the number sent on). The route's own strip/prepend apply after the
pattern's. Sans-IO: no clock, no sockets; concurrency counts live in `Router`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pbx.store.rows import PermissionClass
from pbx.store.trunks import Route, Strategy, Trunk, TrunkStatus

PERMISSION_RANK = {c: i for i, c in enumerate(PermissionClass)}
"""internal < local < national < international: a class may use routes up to its rank."""

_PATTERN_TOKENS: dict[str, str] = {
    "X": "[0-9]",
    "Z": "[1-9]",
    "N": "[2-9]",
    ".": ".+",
    "!": ".*",
}


class PatternError(ValueError):
    """A dial pattern that cannot be compiled; the message names the pattern."""


@dataclass(frozen=True, slots=True)
class DialPattern:
    """One compiled pattern: `rewrite(digits)` is the number to send on, or None."""

    text: str
    regex: re.Pattern[str]
    strip: int
    prepend: str

    def rewrite(self, digits: str) -> str | None:
        found = self.regex.fullmatch(digits)
        if found is None:
            return None
        if found.re.groups:
            return self.prepend + (found.group(1) or "")
        return self.prepend + digits[self.strip :]


@lru_cache(maxsize=512)
def compile_pattern(text: str) -> DialPattern:
    """A FreePBX dial pattern or `re:REGEX` compiled; PatternError when malformed."""
    if text.startswith("re:"):
        try:
            return DialPattern(text, re.compile(text[3:]), 0, "")
        except re.error as exc:
            raise PatternError(f"bad regular expression {text[3:]!r}: {exc}") from None
    prepend, _, rest = text.rpartition("+") if "+" in text.lstrip("+") else ("", "", text)
    prefix, _, match = rest.rpartition("|")
    if not match or not re.fullmatch(r"[0-9*#+]*", prepend):
        raise PatternError(f"bad dial pattern {text!r}")
    body = _translate(prefix + match, text)
    return DialPattern(text, re.compile(body), len(prefix), prepend)


def _translate(pattern: str, text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "[":
            end = pattern.find("]", i)
            inside = pattern[i + 1 : end] if end > i else ""
            if not inside or not re.fullmatch(r"[0-9,\-]+", inside):
                raise PatternError(f"bad digit set in dial pattern {text!r}")
            out.append("[" + inside.replace(",", "") + "]")
            i = end + 1
            continue
        if char in _PATTERN_TOKENS:
            out.append(_PATTERN_TOKENS[char])
        elif char.isdigit() or char in "*#+":
            out.append(re.escape(char))
        else:
            raise PatternError(f"bad character {char!r} in dial pattern {text!r}")
        i += 1
    return "".join(out)


def route_number(route: Route, digits: str) -> str | None:
    """The number this route sends for `digits` (patterns, then strip/prepend), or None."""
    for text in route.patterns:
        number = compile_pattern(text).rewrite(digits)
        if number is not None:
            return route.prepend + number[route.strip :]
    return None


def permits(caller: PermissionClass, route: Route) -> bool:
    return PERMISSION_RANK[caller] >= PERMISSION_RANK[route.permission]


# ---------------------------------------------------------------------------- outcomes


@dataclass(frozen=True, slots=True)
class TrunkAttempt:
    """One try on one trunk: the number (before the trunk's prefix) and caller ID to present."""

    trunk: Trunk
    number: str
    caller_id: str


@dataclass(frozen=True, slots=True)
class RoutePlan:
    route: str
    dialed: str
    attempts: tuple[TrunkAttempt, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why no trunk takes the call: the SIP status and reason, also written into the CDR."""

    status: int
    reason: str


NO_ROUTE = Refusal(404, "Not Found")
FORBIDDEN = Refusal(403, "Forbidden (permission class)")
NO_RESOURCE = Refusal(503, "No Resource")
SERVICE_DOWN = Refusal(503, "Service Down")
SERVICE_FULL = Refusal(503, "Service Full")


# ---------------------------------------------------------------------------- the router


@dataclass(slots=True)
class Router:
    """Plans outbound calls and counts live calls per trunk (the only mutable state).

    `acquire(name)` before sending an INVITE to a trunk (False: the trunk is at
    its cap now), `release(name)` when that leg ends or fails.
    """

    active: dict[str, int] = field(default_factory=dict)
    cursor: dict[str, int] = field(default_factory=dict)
    is_down: Callable[[Trunk], bool] = lambda trunk: trunk.status is TrunkStatus.DOWN

    def plan(
        self,
        caller: PermissionClass,
        digits: str,
        routes: Iterable[Route],
        trunks: Sequence[Trunk],
    ) -> RoutePlan | Refusal:
        """The ordered attempts for `digits` dialled by a caller of class `caller`."""
        matched: Route | None = None
        number: str | None = None
        refusal = NO_ROUTE
        for route in routes:
            number = route_number(route, digits)
            if number is None:
                continue
            if permits(caller, route):
                matched = route
                break
            refusal = FORBIDDEN
        if matched is None or number is None:
            return refusal
        by_name = {t.name: t for t in trunks}
        group = [by_name[n] for n in matched.trunks if n in by_name and by_name[n].enabled]
        usable = [t for t in self.order(matched, group) if self.is_live(t)]
        if not usable:
            return self.why_none(group)
        attempts = tuple(TrunkAttempt(t, number, matched.caller_id or t.caller_id) for t in usable)
        return RoutePlan(matched.name, digits, attempts)

    def is_live(self, trunk: Trunk) -> bool:
        return not self.is_down(trunk) and not self.is_full(trunk)

    def is_full(self, trunk: Trunk) -> bool:
        return 0 < trunk.max_calls <= self.active.get(trunk.name, 0)

    def why_none(self, group: Sequence[Trunk]) -> Refusal:
        """The refusal when no trunk of `group` (the enabled ones) can take a call now."""
        if not group:
            return NO_RESOURCE
        if all(self.is_down(t) for t in group):
            return SERVICE_DOWN
        return SERVICE_FULL

    def order(self, route: Route, group: list[Trunk]) -> list[Trunk]:
        return _STRATEGIES[route.strategy](self, route, group)

    def _priority(self, route: Route, group: list[Trunk]) -> list[Trunk]:
        return list(group)

    def _round_robin(self, route: Route, group: list[Trunk]) -> list[Trunk]:
        if not group:
            return []
        start = self.cursor.get(route.name, 0) % len(group)
        self.cursor[route.name] = start + 1
        return group[start:] + group[:start]

    def _least_busy(self, route: Route, group: list[Trunk]) -> list[Trunk]:
        return sorted(group, key=lambda t: self.active.get(t.name, 0))  # stable: ties by order

    def acquire(self, trunk: Trunk) -> bool:
        if self.is_full(trunk):
            return False
        self.active[trunk.name] = self.active.get(trunk.name, 0) + 1
        return True

    def release(self, name: str) -> None:
        count = self.active.get(name, 0) - 1
        if count > 0:
            self.active[name] = count
        else:
            self.active.pop(name, None)


_STRATEGIES: dict[Strategy, Callable[[Router, Route, list[Trunk]], list[Trunk]]] = {
    Strategy.PRIORITY: Router._priority,
    Strategy.ROUND_ROBIN: Router._round_robin,
    Strategy.LEAST_BUSY: Router._least_busy,
}
