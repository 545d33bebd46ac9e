"""Command groups of the `deskpbx` CLI, one module each.

A module here exposes `register(subparsers)` and sets `handler` on each parser
it adds (`parser.set_defaults(handler=fn)`); `fn(args) -> int` is the exit
status. Add a new group's module name to COMMAND_MODULES.
"""

from __future__ import annotations

from pathlib import Path

COMMAND_MODULES: tuple[str, ...] = (
    "sip",
    "ext",
    "cdr",
    "serve",
    "token",
    "rec",
    "trunk",
    "route",
    "did",
    "group",
    "ban",
    "backup",
    "status",
)


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def data_dir(args: object) -> Path:
    """The data directory from --data-dir, else the platform's per-user data directory."""
    from platformdirs import user_data_dir

    chosen = getattr(args, "data_dir", None)
    path = Path(chosen) if chosen else Path(user_data_dir("deskpbx", appauthor=False))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use data directory {path}: {exc.strerror}") from exc
    return path
