"""Reading JSON request bodies and query parameters into checked values.

Malformed JSON or a body that is not an object is 400; wrong types, unknown
fields and values the store rejects are 422 listing every bad field, so a
developer fixes a request in one round trip.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from pbx.api.problems import Problem
from pbx.store import InvalidValue

MAX_BODY = 64 * 1024
LABEL_RE = re.compile(r"[0-9a-f]{1,64}")


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 problem saying what is wrong with it."""
    raw = await request.read()
    if not raw.strip():
        raise Problem(400, "empty body: send a JSON object with Content-Type: application/json")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise Problem(
            400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError:
        raise Problem(400, "malformed JSON: the body is not UTF-8 text") from None
    if not isinstance(value, dict):
        raise Problem(400, f"the body must be a JSON object, not {type(value).__name__}")
    return value


class Fields:
    """Collects field errors while values are read; `done()` raises one 422 with all of them."""

    def __init__(self, body: dict[str, Any], allowed: tuple[str, ...]) -> None:
        self.body = body
        self.errors: list[dict[str, str]] = []
        for name in body:
            if name not in allowed:
                self.error(name, f"unknown field; allowed fields: {', '.join(allowed)}")

    def error(self, field: str, detail: str) -> None:
        self.errors.append({"field": field, "detail": detail})

    def _get(self, name: str, kind: type | tuple[type, ...], what: str, required: bool) -> Any:
        if name not in self.body or self.body[name] is None:
            if required:
                self.error(name, "required")
            return None
        value = self.body[name]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            self.error(name, f"must be {what}")
            return None
        return value

    def string(self, name: str, *, required: bool = False, max_length: int = 256) -> str | None:
        value = self._get(name, str, "a string", required)
        if value is not None and len(value) > max_length:
            self.error(name, f"must be at most {max_length} characters")
            return None
        return cast(str | None, value)

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self._get(name, int, "an integer", False)
        if value is not None and not low <= value <= high:
            self.error(name, f"must be an integer from {low} to {high}")
            return None
        return cast(int | None, value)

    def boolean(self, name: str) -> bool | None:
        return cast(bool | None, self._get(name, bool, "true or false", False))

    def string_map(self, name: str) -> dict[str, str] | None:
        value = self._get(name, dict, "an object of strings", False)
        if value is not None and not all(isinstance(v, str) for v in value.values()):
            self.error(name, "must be an object of strings")
            return None
        return cast(dict[str, str] | None, value)

    def string_list(self, name: str) -> list[str] | None:
        value = self._get(name, list, "an array of strings", False)
        if value is not None and not all(isinstance(v, str) for v in value):
            self.error(name, "must be an array of strings")
            return None
        return cast(list[str] | None, value)

    def check(self, name: str, value: Any, validator: Callable[[Any], Any]) -> Any:
        """Run a store validator on a value already read; InvalidValue becomes a field error."""
        if value is None:
            return None
        try:
            validator(value)
        except InvalidValue as exc:
            self.error(name, str(exc))
            return None
        return value

    def done(self) -> None:
        if self.errors:
            first = self.errors[0]
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            raise Problem(422, f"{first['field']}: {first['detail']}{more}", errors=self.errors)


def query_float(request: web.Request, name: str) -> float | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise Problem(
            422,
            f"{name}: must be epoch seconds, e.g. 1767225600",
            errors=[{"field": name, "detail": "must be a number of epoch seconds"}],
        )
    return value


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        detail = f"must be an integer from {low} to {high}"
        raise Problem(422, f"{name}: {detail}", errors=[{"field": name, "detail": detail}])
    return int(text)
