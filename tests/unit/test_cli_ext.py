"""`deskpbx ext ...` through pbx.cli.main, checking exact output and exit status."""

from __future__ import annotations

import io
import json
import os
import stat
import time
from pathlib import Path

import pytest

from pbx.cli import main
from pbx.commands import ext as ext_command
from pbx.sip.digest import compute_ha1
from pbx.store import Binding, Store


def run(tmp_path: Path, *argv: str) -> int:
    return main(["--data-dir", str(tmp_path), *argv])


def stored(tmp_path: Path) -> Store:
    return Store.in_dir(tmp_path)


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_add_with_password_and_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "ext", "add", "201", "--password", "secret123", "--name", "Alice") == 0
    assert capsys.readouterr() == ("added extension 201 (Alice)\n", "")
    with stored(tmp_path) as store:
        ext = store.get_extension("201")
    assert ext.name == "Alice"
    assert ext.ha1_md5 == compute_ha1("201", "deskpbx", "secret123", "MD5")
    assert ext.ha1_sha256 == compute_ha1("201", "deskpbx", "secret123", "SHA-256")


def test_add_with_policy_and_permission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ext", "add", "30", "--password", "secret123", "--record", "always"]
    assert run(tmp_path, *argv, "--permission", "international") == 0
    assert capsys.readouterr().out == "added extension 30\n"
    with stored(tmp_path) as store:
        ext = store.get_extension("30")
    assert (ext.record_policy.value, ext.permission.value) == ("always", "international")


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX only")
def test_database_file_is_private_and_holds_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "ext", "add", "201", "--password", "Sup3r-Secret-Pw") == 0
    db = tmp_path / "deskpbx.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"Sup3r-Secret-Pw" not in blob
    assert compute_ha1("201", "deskpbx", "Sup3r-Secret-Pw").encode() in blob


def test_add_generate_prints_password_once_and_it_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "ext", "add", "202", "--generate") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "added extension 202"
    assert len(out) == 2 and out[1].startswith("password: ")
    password = out[1].removeprefix("password: ")
    assert len(password) == 16
    assert set(password) <= set(ext_command.PASSWORD_ALPHABET)
    assert not set(password) & set("0O1lI")
    with stored(tmp_path) as store:
        assert store.get_extension("202").ha1_md5 == compute_ha1("202", "deskpbx", password)


def test_generated_passwords_differ() -> None:
    assert ext_command.generate_password() != ext_command.generate_password()


def test_add_reads_one_line_from_piped_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("piped-password\nignored\n"))
    assert run(tmp_path, "ext", "add", "203") == 0
    assert capsys.readouterr().out == "added extension 203\n"
    with stored(tmp_path) as store:
        assert store.get_extension("203").ha1_md5 == compute_ha1("203", "deskpbx", "piped-password")


def test_add_with_empty_stdin_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert run(tmp_path, "ext", "add", "203") == 2
    err = "deskpbx: no password given: use --password P, --generate, or one line on stdin\n"
    assert capsys.readouterr() == ("", err)


def test_add_prompts_twice_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return "typed-password"

    monkeypatch.setattr("sys.stdin", FakeTty())
    monkeypatch.setattr(ext_command.getpass, "getpass", fake_getpass)
    assert run(tmp_path, "ext", "add", "204") == 0
    assert prompts == ["password for extension 204: ", "repeat the password: "]
    assert capsys.readouterr().out == "added extension 204\n"
    with stored(tmp_path) as store:
        assert store.get_extension("204").ha1_md5 == compute_ha1("204", "deskpbx", "typed-password")


def test_mismatched_prompts_add_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["first-password", "second-password"])
    monkeypatch.setattr("sys.stdin", FakeTty())
    monkeypatch.setattr(ext_command.getpass, "getpass", lambda prompt: next(answers))
    assert run(tmp_path, "ext", "add", "204") == 2
    assert capsys.readouterr() == ("", "deskpbx: the two passwords do not match\n")
    with stored(tmp_path) as store:
        assert store.list_extensions() == []


def test_malformed_number_fails_before_prompting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", FakeTty())
    monkeypatch.setattr(ext_command.getpass, "getpass", lambda prompt: pytest.fail("prompted"))
    assert run(tmp_path, "ext", "add", "2x") == 2
    assert capsys.readouterr() == (
        "",
        "deskpbx: invalid extension number '2x': use 2 to 10 digits\n",
    )


@pytest.mark.parametrize(
    ("argv", "err"),
    [
        (["ext", "add", "1", "--password", "secret123"],
         "invalid extension number '1': use 2 to 10 digits"),
        (["ext", "add", "205", "--password", "short"],
         "password for extension 205 is too short: use at least 8 characters"),
        (["ext", "add", "20512345", "--password", "20512345"],
         "password for extension 20512345 must not be the extension number"),
        (["ext", "add", "205", "--password", "secret123", "--record", "sometimes"],
         "record policy must be one of: always, never, on_demand (not 'sometimes')"),
        (["ext", "add", "205", "--password", "secret123", "--permission", "moon"],
         "permission class must be one of: internal, local, national, international (not 'moon')"),
        (["ext", "remove", "999"], "no extension 999"),
        (["ext", "passwd", "999", "--password", "secret123"], "no extension 999"),
        (["ext", "enable", "999"], "no extension 999"),
        (["ext", "disable", "99x"], "invalid extension number '99x': use 2 to 10 digits"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], err: str
) -> None:
    assert run(tmp_path, *argv) == 2
    assert capsys.readouterr() == ("", f"deskpbx: {err}\n")


def test_duplicate_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "ext", "add", "201", "--password", "secret123", "--name", "A") == 0
    capsys.readouterr()
    assert run(tmp_path, "ext", "add", "201", "--password", "secret456") == 2
    assert capsys.readouterr() == ("", "deskpbx: extension 201 already exists\n")
    with stored(tmp_path) as store:
        assert store.get_extension("201").ha1_md5 == compute_ha1("201", "deskpbx", "secret123")


def test_unwritable_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["--data-dir", str(blocker / "sub"), "ext", "list"]) == 2
    err = capsys.readouterr().err
    assert err == f"deskpbx: cannot use data directory {blocker / 'sub'}: Not a directory\n"


def test_database_path_taken_by_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "deskpbx.db").mkdir()
    assert run(tmp_path, "ext", "list") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deskpbx: cannot create database {tmp_path / 'deskpbx.db'}: ")
    assert err.count("\n") == 1


def test_list_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "ext", "list") == 0
    assert capsys.readouterr().out == "no extensions yet; add one with: deskpbx ext add NUM\n"
    assert run(tmp_path, "ext", "list", "--json") == 0
    assert capsys.readouterr().out == "[]\n"


def _populate(tmp_path: Path) -> None:
    now = time.time()
    with stored(tmp_path) as store:
        store.add_extension("201", "secret123", "Alice", now=1000.0)
        store.add_extension("202", "secret123", now=2000.0, record_policy="always")
        store.add_extension("1000", "secret123", "Reception Desk", now=3000.0)
        store.update_extension("202", enabled=False)
        for contact, expires_at in [("sip:a@h", now + 600), ("sip:b@h", now + 60),
                                    ("sip:old@h", now - 1)]:  # fmt: skip
            store.upsert_binding(Binding("201", contact, "192.0.2.1", 5060, "udp", expires_at))
        store.upsert_binding(Binding("1000", "sip:c@h", "192.0.2.2", 5060, "tcp", now + 600))


def test_list_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "ext", "list") == 0
    assert capsys.readouterr().out == (
        "NUMBER  NAME            ENABLED  CONTACTS  RECORD\n"
        "201     Alice           yes      2         never\n"
        "202                     no       0         always\n"
        "1000    Reception Desk  yes      1         never\n"
    )


def test_list_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "ext", "list", "--json") == 0
    items = json.loads(capsys.readouterr().out)
    assert items == [
        {"number": "201", "name": "Alice", "enabled": True, "record_policy": "never",
         "permission": "national", "created": 1000.0, "contacts": 2},
        {"number": "202", "name": "", "enabled": False, "record_policy": "always",
         "permission": "national", "created": 2000.0, "contacts": 0},
        {"number": "1000", "name": "Reception Desk", "enabled": True, "record_policy": "never",
         "permission": "national", "created": 3000.0, "contacts": 1},
    ]  # fmt: skip


def test_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "ext", "remove", "201") == 0
    assert capsys.readouterr().out == "removed extension 201\n"
    with stored(tmp_path) as store:
        assert [e.number for e in store.list_extensions()] == ["202", "1000"]
        assert store.active_binding_counts(time.time()) == {"1000": 1}


def test_passwd(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "ext", "passwd", "201", "--password", "brand-new-pw") == 0
    assert capsys.readouterr().out == "changed the password of extension 201\n"
    with stored(tmp_path) as store:
        ext = store.get_extension("201")
    assert ext.ha1_sha256 == compute_ha1("201", "deskpbx", "brand-new-pw", "SHA-256")
    assert ext.name == "Alice"


def test_passwd_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "ext", "passwd", "202", "--generate") == 0
    first, second = capsys.readouterr().out.splitlines()
    assert first == "changed the password of extension 202"
    password = second.removeprefix("password: ")
    with stored(tmp_path) as store:
        assert store.get_extension("202").ha1_md5 == compute_ha1("202", "deskpbx", password)


def test_passwd_rejects_weak_password_and_keeps_old(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "ext", "passwd", "201", "--password", "201") == 2
    assert capsys.readouterr().err == (
        "deskpbx: password for extension 201 is too short: use at least 8 characters\n"
    )
    with stored(tmp_path) as store:
        assert store.get_extension("201").ha1_md5 == compute_ha1("201", "deskpbx", "secret123")


def test_enable_disable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "ext", "disable", "201") == 0
    assert run(tmp_path, "ext", "enable", "202") == 0
    assert capsys.readouterr().out == "disabled extension 201\nenabled extension 202\n"
    with stored(tmp_path) as store:
        assert [e.enabled for e in store.list_extensions()] == [False, True, True]


def test_password_and_generate_are_exclusive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, "ext", "add", "201", "--password", "secret123", "--generate")
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_set_changes_only_given_attributes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _populate(tmp_path)
    assert run(tmp_path, "ext", "set", "201", "--record", "on_demand") == 0
    assert capsys.readouterr().out == (
        "extension 201: name 'Alice', record on_demand, permission national\n"
    )
    assert run(tmp_path, "ext", "set", "201", "--name", "Alice B", "--permission", "local") == 0
    assert capsys.readouterr().out == (
        "extension 201: name 'Alice B', record on_demand, permission local\n"
    )
    with stored(tmp_path) as store:
        ext = store.get_extension("201")
    assert (ext.name, ext.record_policy.value, ext.permission.value) == (
        "Alice B",
        "on_demand",
        "local",
    )
    assert ext.ha1_md5 == compute_ha1("201", "deskpbx", "secret123")


@pytest.mark.parametrize(
    ("argv", "err"),
    [
        (["ext", "set", "201"], "nothing to change: give --name, --record or --permission"),
        (["ext", "set", "999", "--name", "X"], "no extension 999"),
        (["ext", "set", "201", "--record", "maybe"],
         "record policy must be one of: always, never, on_demand (not 'maybe')"),
    ],
)  # fmt: skip
def test_set_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], err: str
) -> None:
    _populate(tmp_path)
    assert run(tmp_path, *argv) == 2
    assert capsys.readouterr() == ("", f"deskpbx: {err}\n")
    with stored(tmp_path) as store:
        assert store.get_extension("201").record_policy.value == "never"
