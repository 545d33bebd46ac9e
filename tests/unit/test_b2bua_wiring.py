"""What the wiring adds to a call's data and to `deskpbx serve`: the CDR's recording link,
click-to-call and transfer flags, fork numbering across transfers, recording settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx.call import fork_invite
from pbx.cli import build_parser
from pbx.commands import UsageError
from pbx.commands.serve import config_from_args
from pbx.recording import RecordingSettings
from pbx.store import Disposition
from tests.unit.test_call import make_call


def test_the_cdr_links_the_recording() -> None:
    call = make_call(recording="/data/recordings/2026/11/27/call-1.wav")
    call.end, call.disposition = 1010.0, Disposition.ANSWERED
    assert call.to_cdr().recording == "/data/recordings/2026/11/27/call-1.wav"
    plain = make_call()
    plain.end, plain.disposition = 1010.0, Disposition.ANSWERED
    assert plain.to_cdr().recording is None


def test_only_a_phone_placed_call_waits_for_our_answer() -> None:
    assert make_call().a_waits is True
    assert make_call(originated=True).a_waits is False
    assert make_call(rerouting=True).a_waits is False


def test_fork_call_ids_keep_counting_across_transfers() -> None:
    call = make_call()
    peer = call.a_peer
    first = fork_invite(call, "sip:1002@127.0.0.1:5080", peer, b"", "DeskPBX")
    call.forks_sent = 3  # two forks rang, then a transfer placed a third
    later = fork_invite(call, "sip:1003@127.0.0.1:5090", peer, b"", "DeskPBX")
    assert (first.call_id, later.call_id) == ("label-0@deskpbx", "label-3@deskpbx")


def test_click_to_call_legs_b_show_the_extension_not_our_caller_id() -> None:
    call = make_call(originated=True)
    call.a_invite.headers.set("From", '"CRM" <sip:1002@127.0.0.1>;tag=a')
    invite = fork_invite(call, "sip:1002@127.0.0.1:5080", call.a_peer, b"", "DeskPBX")
    assert invite.headers.get("From") == "<sip:1001@127.0.0.1:5060>;tag=tag-a"


def _serve(*args: str):  # type: ignore[no-untyped-def]
    parsed = build_parser().parse_args(["--data-dir", "/tmp/x", "serve", *args])
    return config_from_args(parsed)


def test_serve_passes_recording_settings_to_the_recording_manager() -> None:
    config = _serve("--recording-retention-days", "30", "--recording-max-bytes", "1000000",
                    "--recording-feature-code", "*9")  # fmt: skip
    assert RecordingSettings.from_extra(config.extra) == RecordingSettings(30.0, 1_000_000, "*9")
    assert config.data_dir == Path("/tmp/x")
    default = RecordingSettings.from_extra(_serve().extra)
    assert default == RecordingSettings(None, None, "*1")


@pytest.mark.parametrize(
    "args",
    [
        ("--recording-retention-days", "0"),
        ("--recording-max-bytes", "-5"),
        ("--recording-feature-code", "*x"),
    ],
)
def test_serve_refuses_unusable_recording_settings(args: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        _serve(*args)
