"""`deskpbx token create|list|revoke`: the token is printed once and only its hash is stored."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from pbx.cli import main
from pbx.store import Store


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> tuple[int, str, str]:
    status = main(["--data-dir", str(data_dir), "token", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_create_prints_the_token_once_and_stores_only_its_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, tmp_path, "create", "crm")
    assert status == 0
    token, note = out.splitlines()
    assert token.startswith("dpbx_") and len(token) == 5 + 43
    assert note == "created API token crm; it is shown only now, keep it safe"
    with Store.in_dir(tmp_path) as store:
        [row] = store.list_api_tokens()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert store.find_api_token(row.token_hash) == row
    raw = (tmp_path / "deskpbx.db").read_bytes()
    wal = tmp_path / "deskpbx.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert token.encode() not in raw
    conn = sqlite3.connect(tmp_path / "deskpbx.db")
    assert conn.execute("SELECT count(*) FROM api_tokens WHERE token_hash = ?",
                        (token,)).fetchone() == (0,)  # fmt: skip
    conn.close()


def test_two_tokens_differ(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, tmp_path, "create", "a")[1].splitlines()[0]
    second = run(capsys, tmp_path, "create", "b")[1].splitlines()[0]
    assert first != second


def test_list_and_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, tmp_path, "list")[1] == (
        "no API tokens yet; create one with: deskpbx token create NAME\n"
    )
    run(capsys, tmp_path, "create", "helpdesk")
    run(capsys, tmp_path, "create", "crm")
    status, out, _ = run(capsys, tmp_path, "list")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "LAST", "USED"]
    assert [line.split()[0] for line in lines[1:]] == ["crm", "helpdesk"]
    assert lines[1].endswith("never")
    assert run(capsys, tmp_path, "revoke", "crm")[1] == "revoked API token crm\n"
    status, out, _ = run(capsys, tmp_path, "list")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["helpdesk"]


def test_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, tmp_path, "create", "crm")
    assert run(capsys, tmp_path, "create", "crm")[::2] == (
        2, "deskpbx: an API token named crm already exists; revoke it first\n"
    )  # fmt: skip
    assert run(capsys, tmp_path, "revoke", "nobody")[::2] == (
        2, "deskpbx: no API token named nobody\n"
    )  # fmt: skip
    status, _, err = run(capsys, tmp_path, "create", "bad name")
    assert status == 2
    assert err == (
        "deskpbx: invalid token name 'bad name': use 1 to 64 letters, digits, '.', '_' or '-'\n"
    )
