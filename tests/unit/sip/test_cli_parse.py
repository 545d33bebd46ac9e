"""`deskpbx sip parse FILE` on RFC 4475 messages: JSON for a valid one, the error for a bad one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbx.cli import main


def test_parse_valid_message(rfc4475_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sip", "parse", str(rfc4475_dir / "esc01.dat")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["type"], data["method"]) == ("request", "INVITE")
    assert data["uri"] == "sip:sips%3Auser%40example.com@example.net"
    assert data["headers"][0] == ["To", "sip:%75se%72@example.com"]
    assert ["Content-Type", "application/sdp"] in data["headers"]  # compact "C" expanded
    assert data["body"].startswith("v=0\r\n") and len(data["body"]) == 150
    assert data["body_encoding"] == "utf-8"
    assert data["parsed"] == {
        "call_id": "esc01.239409asdfakjkn23onasd0-3234",
        "cseq": {"seq": 234234, "method": "INVITE"},
        "via_branch": "z9hG4bKkdjuw",
        "from_tag": "938",
        "to_tag": None,
    }


def test_parse_response_with_unusual_reason(
    rfc4475_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sip", "parse", str(rfc4475_dir / "unreason.dat")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["type"], data["status"]) == ("response", 200)
    assert data["reason"] == "= 2**3 * 5**2 но сто девяносто девять - простое"


def test_parse_invalid_message(rfc4475_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sip", "parse", str(rfc4475_dir / "ncl.dat")]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": "Bad Content-Length", "status": 400}
    assert "not a valid SIP message: 400 Bad Content-Length" in captured.err


def test_parse_unsupported_version(rfc4475_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sip", "parse", str(rfc4475_dir / "badvers.dat")]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "error": "Unsupported SIP Version",
        "status": 505,
    }
