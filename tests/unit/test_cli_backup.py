"""`deskpbx backup FILE`: a consistent, owner-only copy of the database, also while a
PBX process holds it open, that opens as a store with everything in it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from pbx.cli import main
from pbx.store import Store
from pbx.store.trunks import Trunk


def test_backup_copies_everything_and_opens_as_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, copy = tmp_path / "data", tmp_path / "copies" / "pbx-backup.db"
    copy.parent.mkdir()
    data.mkdir()
    with Store.in_dir(data) as store:
        store.add_extension("201", "secret-201", "Front desk")
        store.add_trunk(Trunk("carrier", "sip.carrier.example", password="carrier-pw"))
        store.save_ban("192.0.2.5", 9e9, 1.0)
        # the database is held open meanwhile, as a running PBX holds it
        assert main(["--data-dir", str(data), "backup", str(copy)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"backed up {data / 'deskpbx.db'} to {copy} (")
    if os.name == "posix":
        assert copy.stat().st_mode & 0o777 == 0o600
    restored = tmp_path / "restored"
    restored.mkdir()
    os.replace(copy, restored / "deskpbx.db")
    with Store.in_dir(restored) as store:
        assert store.find_extension("201") is not None
        assert store.get_trunk("carrier").password == "carrier-pw"
        assert store.active_bans(2.0) == {"192.0.2.5": 9e9}


def test_backup_refuses_to_overwrite_the_database_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store.in_dir(tmp_path):
        pass
    assert main(["--data-dir", str(tmp_path), "backup", str(tmp_path / "deskpbx.db")]) == 2
    assert capsys.readouterr().err == "deskpbx: the backup file cannot be the database itself\n"
    with sqlite3.connect(tmp_path / "deskpbx.db") as conn:  # untouched
        assert conn.execute("SELECT count(*) FROM extensions").fetchone() == (0,)
    missing = tmp_path / "no" / "such" / "dir" / "copy.db"
    assert main(["--data-dir", str(tmp_path), "backup", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"deskpbx: cannot write {missing}")
