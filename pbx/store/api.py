"""Store queries for HTTP API tokens, webhooks and paged CDR history (the HTTP API issue).

A mixin of `pbx.store.Store`: methods here use the store's `_transaction()`
and `_rows()` and return typed rows, so `Store` stays the only SQL writer.

Tokens are stored as the SHA-256 hex digest of the bearer token only; the
token itself is shown once by `deskpbx token create` and never again.

CDR pages are ordered newest first by (start, id) and continue from a keyset
cursor, so a page never repeats or skips a row when calls end while a client
pages through history (unlike OFFSET).
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pbx.store.errors import InvalidValue, StoreError
from pbx.store.mixin import StoreMixin
from pbx.store.rows import Cdr, Disposition, parse_enum

if TYPE_CHECKING:
    pass

TOKEN_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
X_HEADER_RE = re.compile(r"[Xx]-[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
MAX_PAGE = 1000
WEBHOOK_EVENTS = ("call.ringing", "call.answered", "call.ended", "recording.ready")


class DuplicateToken(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"an API token named {name} already exists; revoke it first")
        self.name = name


class UnknownToken(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no API token named {name}")
        self.name = name


class UnknownWebhook(StoreError):
    def __init__(self, webhook_id: int) -> None:
        super().__init__(f"no webhook {webhook_id}")
        self.webhook_id = webhook_id


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A named bearer token; `token_hash` is sha256(token) in hex."""

    name: str
    token_hash: str
    created: float
    last_used: float | None = None

    def to_public_dict(self) -> dict[str, Any]:
        return {"name": self.name, "created": self.created, "last_used": self.last_used}


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where call events are POSTed; `events` empty means every event type."""

    id: int
    url: str
    secret: str
    events: tuple[str, ...]
    description: str
    created: float

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events

    def to_public_dict(self) -> dict[str, Any]:
        """Without the secret: it is shown only in the answer to the creating request."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "description": self.description,
            "created": self.created,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Webhook:
        return cls(
            id=row["id"],
            url=row["url"],
            secret=row["secret"],
            events=tuple(json.loads(row["events"] or "[]")),
            description=row["description"],
            created=row["created"],
        )


def validate_token_name(name: str) -> str:
    if not isinstance(name, str) or TOKEN_NAME_RE.fullmatch(name) is None:
        raise InvalidValue(
            f"invalid token name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return name


def validate_x_header(name: str) -> str:
    if not isinstance(name, str) or X_HEADER_RE.fullmatch(name) is None:
        raise InvalidValue(f"invalid header name {name!r}: expected an X- header such as X-Crm-Id")
    return name


def validate_events(events: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown:
        raise InvalidValue(f"unknown event type {unknown[0]!r}: use {', '.join(WEBHOOK_EVENTS)}")
    return tuple(dict.fromkeys(events))


class ApiQueries(StoreMixin):
    """Mixed into Store."""

    # -- tokens -----------------------------------------------------------------------------

    def add_api_token(self, name: str, token_hash: str, now: float) -> ApiToken:
        validate_token_name(name)
        try:
            with self._transaction() as conn:
                conn.execute(
                    "INSERT INTO api_tokens (name, token_hash, created) VALUES (?, ?, ?)",
                    (name, token_hash, now),
                )
        except sqlite3.IntegrityError:
            raise DuplicateToken(name) from None
        return ApiToken(name, token_hash, now)

    def list_api_tokens(self) -> list[ApiToken]:
        return [ApiToken(**row) for row in self._rows("api_tokens", order_by="name")]

    def revoke_api_token(self, name: str) -> None:
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM api_tokens WHERE name = ?", (name,))
        if cursor.rowcount == 0:
            raise UnknownToken(name)

    def find_api_token(self, token_hash: str) -> ApiToken | None:
        rows = self._rows("api_tokens", "token_hash = ?", [token_hash])
        return ApiToken(**rows[0]) if rows else None

    def touch_api_token(self, name: str, now: float) -> None:
        """Remember when a token was last used (shown by `deskpbx token list`)."""
        with self._transaction() as conn:
            conn.execute("UPDATE api_tokens SET last_used = ? WHERE name = ?", (now, name))

    # -- webhooks ---------------------------------------------------------------------------

    def add_webhook(
        self, url: str, secret: str, events: tuple[str, ...], description: str, now: float
    ) -> Webhook:
        events = validate_events(events)
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO webhooks (url, secret, events, description, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (url, secret, json.dumps(list(events)), description, now),
            )
        return Webhook(int(cursor.lastrowid or 0), url, secret, events, description, now)

    def list_webhooks(self) -> list[Webhook]:
        return [Webhook.from_row(row) for row in self._rows("webhooks", order_by="id")]

    def get_webhook(self, webhook_id: int) -> Webhook:
        rows = self._rows("webhooks", "id = ?", [webhook_id])
        if not rows:
            raise UnknownWebhook(webhook_id)
        return Webhook.from_row(rows[0])

    def remove_webhook(self, webhook_id: int) -> None:
        with self._transaction() as conn:
            cursor = conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
        if cursor.rowcount == 0:
            raise UnknownWebhook(webhook_id)

    # -- CDR history ------------------------------------------------------------------------

    def cdr_page(
        self,
        *,
        limit: int = 50,
        since: float | None = None,
        until: float | None = None,
        caller: str | None = None,
        callee: str | None = None,
        disposition: Disposition | str | None = None,
        x_header: tuple[str, str] | None = None,
        before: tuple[float, int] | None = None,
    ) -> list[Cdr]:
        """Newest first; rows strictly after the keyset `before` = (start, id) of the last row
        of the previous page. `x_header` = (name, value) matches the name in any letter case
        (the B2BUA keeps X- headers as the phone spelled them)."""
        if not 1 <= limit <= MAX_PAGE + 1:
            raise InvalidValue(f"limit must be between 1 and {MAX_PAGE}")
        clauses: list[str] = []
        args: dict[str, Any] = {}
        for column, op, value in (("start", ">=", since), ("start", "<", until),
                                  ("caller", "=", caller), ("callee", "=", callee)):  # fmt: skip
            if value is not None:
                key = f"p{len(args)}"
                clauses.append(f"{column} {op} :{key}")
                args[key] = value
        if disposition is not None:
            clauses.append("disposition = :disposition")
            args["disposition"] = parse_enum(Disposition, disposition, "disposition").value
        if x_header is not None:
            # instr() on the stored JSON text (ensure_ascii, so the encoded value appears
            # verbatim) discards most rows cheaply; json_each then checks name and value.
            clauses.append(
                "instr(x_headers, :xjson) > 0 AND "
                "EXISTS (SELECT 1 FROM json_each(cdrs.x_headers) "
                "WHERE lower(json_each.key) = lower(:xname) AND json_each.value = :xvalue)"
            )
            args["xname"], args["xvalue"] = validate_x_header(x_header[0]), x_header[1]
            args["xjson"] = json.dumps(x_header[1])
        if before is not None:
            clauses.append("(start < :bstart OR (start = :bstart AND id < :bid))")
            args["bstart"], args["bid"] = before
        rows = self._rows(
            "cdrs", " AND ".join(clauses) or None, args, order_by="start DESC, id DESC",
            limit=limit,
        )  # fmt: skip
        return [Cdr.from_row(row) for row in rows]

    def find_cdr_of_call(self, call_id: str, start: float) -> Cdr | None:
        """The stored CDR of a call (Call-ID and start time identify it)."""
        rows = self._rows(
            "cdrs", "call_id = ? AND start = ?", [call_id, start], order_by="id DESC", limit=1
        )
        return Cdr.from_row(rows[0]) if rows else None
