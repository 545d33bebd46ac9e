"""`deskpbx rec`: list, play and export call recordings.

`list` shows the index (newest first) with each file's state: `ok`, `open`
(still being recorded, or DeskPBX died and has not restarted yet), `repaired`
(its header was rebuilt after a crash) or `missing` (the file is gone).
`play` sends a recording to the default sound output through `sounddevice`
(an optional dependency, imported only here); with no sound card or no
library it says so in one line and exits 1. `export` copies the file after
checking it still matches the SHA-256 taken when the recording was finished.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pbx.commands import UsageError
from pbx.commands.cdr import format_seconds, parse_limit
from pbx.commands.ext import format_table, with_store

if TYPE_CHECKING:
    from pbx.store import Store
    from pbx.store.recordings import Recording

DEFAULT_LIMIT = 20
HEADERS = ("ID", "TIME", "CALLER", "CALLEE", "DURATION", "SIZE", "STATE", "FILE")


def register(subparsers: Any) -> None:
    rec = subparsers.add_parser("rec", help="list, play and export call recordings")
    sub = rec.add_subparsers(dest="rec_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", help="the newest recordings")
    listing.add_argument(
        "--limit", metavar="N", default=str(DEFAULT_LIMIT),
        help=f"how many recordings, newest first (default {DEFAULT_LIMIT})",
    )  # fmt: skip
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(handler=cmd_list)
    play = sub.add_parser("play", help="play a recording on the default sound output")
    play.add_argument("id", metavar="ID", help="recording id (from `deskpbx rec list`)")
    play.set_defaults(handler=cmd_play)
    export = sub.add_parser("export", help="copy a recording's WAV file")
    export.add_argument("id", metavar="ID", help="recording id (from `deskpbx rec list`)")
    export.add_argument("file", metavar="FILE", help="where to write the WAV file")
    export.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    export.set_defaults(handler=cmd_export)


def state_of(recording: Recording) -> str:
    if not Path(recording.path).exists():
        return "missing"
    if not recording.complete:
        return "open"
    return "repaired" if recording.repaired else "ok"


def format_size(size: int) -> str:
    """1536 -> '1.5 KiB'; bytes below 1 KiB as such."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def table_row(recording: Recording) -> list[str]:
    return [
        str(recording.id),
        datetime.fromtimestamp(recording.start).strftime("%Y-%m-%d %H:%M:%S"),
        recording.caller,
        recording.callee,
        format_seconds(recording.duration),
        format_size(recording.size),
        state_of(recording),
        recording.path,
    ]


@with_store
def cmd_list(args: argparse.Namespace, store: Store) -> int:
    recordings = store.list_recordings(limit=parse_limit(args.limit))
    if args.json:
        rows = [{**r.to_public_dict(), "state": state_of(r)} for r in recordings]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not recordings:
        print("no recordings")
    else:
        print(format_table(HEADERS, [table_row(r) for r in recordings]))
    return 0


def find(store: Store, text: str) -> Recording:
    """The recording with id `text`, whose file exists; UsageError otherwise."""
    if not text.isdigit():
        raise UsageError(f"recording id must be a number, not {text!r}")
    recording = store.get_recording(int(text))
    if recording is None:
        raise UsageError(f"no recording {text}")
    if not Path(recording.path).exists():
        raise UsageError(f"recording {text}: file {recording.path} is missing")
    return recording


@with_store
def cmd_export(args: argparse.Namespace, store: Store) -> int:
    recording = find(store, args.id)
    target = Path(args.file)
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; use --force to overwrite it")
    source = Path(recording.path)
    if recording.complete and recording.sha256:
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        if digest != recording.sha256:
            raise UsageError(f"recording {recording.id} changed on disk since it was finished "
                             f"(SHA-256 mismatch); not exporting")  # fmt: skip
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from exc
    print(f"exported recording {recording.id} to {target}")
    return 0


@with_store
def cmd_play(args: argparse.Namespace, store: Store) -> int:
    from pbx.media.wavfile import WavError, read_frames

    recording = find(store, args.id)
    try:
        frames, rate = read_frames(Path(recording.path))
    except WavError as exc:
        raise UsageError(str(exc)) from exc
    problem = play(frames, rate)
    if problem is not None:
        print(f"deskpbx: cannot play recording {recording.id}: {problem}", file=sys.stderr)
        return 1
    return 0


def play(frames: Any, rate: int) -> str | None:
    """Play int16 frames on the default output and wait; None, or why it could not."""
    try:
        import sounddevice  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        return f"sound output needs the sounddevice package ({exc})"
    try:
        sounddevice.query_devices(kind="output")
        sounddevice.play(frames, rate, blocking=True)
    except Exception as exc:  # PortAudioError and friends: no usable output device
        return f"no sound output device ({exc})"
    return None
