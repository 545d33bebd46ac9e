"""Typed rows of the store: extensions, registrar bindings and CDRs.

Rows are frozen dataclasses so that callers (registrar, B2BUA, API, GUI
models) can pass them between threads without copying. Enumerated columns are
`enum.Enum` whose values are the exact text stored in SQLite, so the database
stays readable with the sqlite3 shell. Times are wall-clock epoch seconds
(floats): unlike the sans-IO SIP core, rows outlive the process.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pbx.frozen import quick_constructor
from pbx.store.errors import InvalidValue, WeakPassword

E = TypeVar("E", bound=enum.Enum)

NUMBER_RE = re.compile(r"[0-9]{2,10}")
MIN_PASSWORD_LENGTH = 8


class RecordPolicy(enum.Enum):
    """Whether calls of an extension are recorded (to stereo WAV, later)."""

    ALWAYS = "always"
    NEVER = "never"
    ON_DEMAND = "on_demand"


class PermissionClass(enum.Enum):
    """How far an extension may dial out, widening in this order."""

    INTERNAL = "internal"
    LOCAL = "local"
    NATIONAL = "national"
    INTERNATIONAL = "international"


class Disposition(enum.Enum):
    """Outcome of a call, in the vocabulary of Asterisk/FreePBX CDRs."""

    ANSWERED = "ANSWERED"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class HangupSide(enum.Enum):
    """Who ended the call: one of the legs, or the PBX itself (timeout, error)."""

    CALLER = "caller"
    CALLEE = "callee"
    SYSTEM = "system"


def parse_enum(kind: type[E], value: E | str, what: str) -> E:
    """`value` as a member of `kind`, accepting the stored text; InvalidValue otherwise."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)
        raise InvalidValue(f"{what} must be one of: {choices} (not {value!r})") from None


def validate_number(number: str) -> str:
    """An extension number is 2 to 10 ASCII digits (it is the SIP user part and digest username)."""
    if not isinstance(number, str) or NUMBER_RE.fullmatch(number) is None:
        raise InvalidValue(f"invalid extension number {number!r}: use 2 to 10 digits")
    return number


def validate_password(number: str, password: str) -> str:
    """Reject passwords that SIP scanners (friendly-scanner, sipvicious) guess first."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(
            f"password for extension {number} is too short: "
            f"use at least {MIN_PASSWORD_LENGTH} characters"
        )
    if password == number:
        raise WeakPassword(f"password for extension {number} must not be the extension number")
    return password


@dataclass(frozen=True, slots=True)
class Extension:
    """A local phone account. HA1 values replace the password (RFC 7616 §3.4.2)."""

    number: str
    name: str
    ha1_md5: str
    ha1_sha256: str
    enabled: bool = True
    record_policy: RecordPolicy = RecordPolicy.NEVER
    permission: PermissionClass = PermissionClass.NATIONAL
    created: float = 0.0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Extension:
        return cls(
            number=row["number"],
            name=row["name"],
            ha1_md5=row["ha1_md5"],
            ha1_sha256=row["ha1_sha256"],
            enabled=bool(row["enabled"]),
            record_policy=RecordPolicy(row["record_policy"]),
            permission=PermissionClass(row["permission"]),
            created=row["created"],
        )

    def to_public_dict(self) -> dict[str, Any]:
        """JSON-ready view without the HA1 values (they are password-equivalent in the realm)."""
        return {
            "number": self.number,
            "name": self.name,
            "enabled": self.enabled,
            "record_policy": self.record_policy.value,
            "permission": self.permission.value,
            "created": self.created,
        }


@dataclass(frozen=True, slots=True)
class Binding:
    """One Contact of an extension in the location service (RFC 3261 §10.3).

    The source address is where the REGISTER really came from: behind NAT the
    Contact URI holds a private address, so requests go to the source
    (RFC 5626 §5, RFC 3581 §4 style) over the same transport.
    """

    extension: str
    contact: str
    source_host: str
    source_port: int
    transport: str
    expires_at: float
    q: float = 1.0
    call_id: str = ""
    cseq: int = 0
    user_agent: str = ""
    instance_id: str = ""
    reachable: bool = True
    last_qualified: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Binding:
        values = {name: row[name] for name in BINDING_COLUMNS}
        values["reachable"] = bool(values["reachable"])
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in BINDING_COLUMNS}
        row["reachable"] = int(self.reachable)
        return row


new_binding: Callable[..., Binding] = quick_constructor(Binding)
"""Binding(...) for the registrar's hot path (see quick_constructor)."""

BINDING_COLUMNS = (
    "extension", "contact", "source_host", "source_port", "transport", "expires_at", "q",
    "call_id", "cseq", "user_agent", "instance_id", "reachable", "last_qualified",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cdr:
    """Call detail record: one row per call, written when the call ends.

    `duration` runs from `start` (INVITE received) to `end`; `billsec` from
    `answer` (200 OK) to `end`, 0 when never answered. `id` is None until stored.
    """

    call_id: str
    caller: str
    callee: str
    start: float
    end: float
    disposition: Disposition
    answer: float | None = None
    duration: float = 0.0
    billsec: float = 0.0
    sip_code: int = 0
    sip_reason: str = ""
    hangup_side: HangupSide = HangupSide.SYSTEM
    x_headers: dict[str, str] = field(default_factory=dict)
    recording: str | None = None
    media_stats: dict[str, Any] | None = None
    id: int | None = None

    @classmethod
    def from_times(
        cls,
        *,
        call_id: str,
        caller: str,
        callee: str,
        start: float,
        answer: float | None,
        end: float,
        disposition: Disposition,
        **rest: Any,
    ) -> Cdr:
        """A CDR whose duration and billsec are derived from the three timestamps."""
        billsec = max(0.0, end - answer) if answer is not None else 0.0
        return cls(
            call_id=call_id, caller=caller, callee=callee, start=start, answer=answer,
            end=end, disposition=disposition, duration=max(0.0, end - start),
            billsec=billsec, **rest,
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Cdr:
        values = {name: row[name] for name in CDR_COLUMNS}
        values["disposition"] = Disposition(values["disposition"])
        values["hangup_side"] = HangupSide(values["hangup_side"])
        values["x_headers"] = json.loads(values["x_headers"] or "{}")
        stats = values["media_stats"]
        values["media_stats"] = json.loads(stats) if stats is not None else None
        return cls(**values)

    def to_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in CDR_COLUMNS}
        row["disposition"] = parse_enum(Disposition, self.disposition, "disposition").value
        row["hangup_side"] = parse_enum(HangupSide, self.hangup_side, "hangup side").value
        row["x_headers"] = json.dumps(self.x_headers, sort_keys=True)
        row["media_stats"] = (
            json.dumps(self.media_stats, sort_keys=True) if self.media_stats is not None else None
        )
        if self.id is None:
            del row["id"]
        return row

    def to_public_dict(self) -> dict[str, Any]:
        """JSON-ready view, the shape the CLI and HTTP API print."""
        row = {name: getattr(self, name) for name in CDR_COLUMNS}
        row["disposition"] = self.disposition.value
        row["hangup_side"] = self.hangup_side.value
        return row


CDR_COLUMNS = (
    "id", "call_id", "caller", "callee", "start", "answer", "end", "duration", "billsec",
    "disposition", "sip_code", "sip_reason", "hangup_side", "x_headers", "recording",
    "media_stats",
)  # fmt: skip
