"""The SQLite store: file safety, schema, settings and extensions."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.sip.digest import compute_ha1
from pbx.store import (
    DB_FILENAME,
    DEFAULT_REALM,
    SCHEMA_VERSION,
    DuplicateExtension,
    Extension,
    InvalidValue,
    PermissionClass,
    RecordPolicy,
    Store,
    StoreUnavailable,
    UnknownExtension,
    WeakPassword,
)

PASSWORD = "correct-horse-battery"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.in_dir(tmp_path) as opened:
        yield opened


def _raw(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# -- the file ----------------------------------------------------------------------------------


def test_store_creates_deskpbx_db_in_the_data_dir(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        assert store.path == tmp_path / DB_FILENAME
    assert (tmp_path / "deskpbx.db").is_file()


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX only")
def test_database_and_wal_files_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        with Store.in_dir(tmp_path) as store:
            store.add_extension("201", PASSWORD)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        os.umask(old_umask)
    assert modes["deskpbx.db"] == 0o600
    assert modes["deskpbx.db-wal"] == 0o600
    assert modes["deskpbx.db-shm"] == 0o600


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX only")
def test_existing_world_readable_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / DB_FILENAME
    path.touch()
    path.chmod(0o644)
    Store(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_journal_mode_is_wal(tmp_path: Path) -> None:
    Store.in_dir(tmp_path).close()
    assert _raw(tmp_path / DB_FILENAME, "PRAGMA journal_mode") == [("wal",)]


def test_reopening_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        store.add_extension("201", PASSWORD, "Alice", now=1000.0)
        secret = store.nonce_secret
    with Store.in_dir(tmp_path) as store:
        assert store.nonce_secret == secret
        assert [e.number for e in store.list_extensions()] == ["201"]
    versions = _raw(tmp_path / DB_FILENAME, "SELECT version FROM schema_version")
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each ran once


def test_newer_schema_is_refused_with_upgrade_hint(tmp_path: Path) -> None:
    Store.in_dir(tmp_path).close()
    conn = sqlite3.connect(tmp_path / DB_FILENAME)
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreUnavailable, match="newer than this DeskPBX understands"):
        Store.in_dir(tmp_path)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).write_bytes(b"this is not sqlite at all, just text " * 200)
    with pytest.raises(StoreUnavailable, match=r"cannot use database .*deskpbx\.db"):
        Store.in_dir(tmp_path)


def test_missing_parent_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable, match="cannot create database .*Not a directory"):
        Store.in_dir(blocker)


def test_database_path_that_is_a_directory_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / DB_FILENAME).mkdir()
    with pytest.raises(StoreUnavailable, match="cannot create database"):
        Store.in_dir(tmp_path)


# -- settings ----------------------------------------------------------------------------------


def test_first_open_creates_realm_and_nonce_secret(store: Store) -> None:
    assert store.realm == DEFAULT_REALM == "deskpbx"
    secret = store.nonce_secret
    assert len(secret) == 64
    int(secret, 16)  # hex


def test_each_database_gets_its_own_nonce_secret(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with Store.in_dir(tmp_path / "a") as a, Store.in_dir(tmp_path / "b") as b:
        assert a.nonce_secret != b.nonce_secret


def test_settings_round_trip_and_default(store: Store) -> None:
    assert store.get_setting("http_port") is None
    assert store.get_setting("http_port", "8080") == "8080"
    store.set_setting("http_port", "8081")
    store.set_setting("http_port", "8082")
    assert store.get_setting("http_port") == "8082"


def test_realm_cannot_be_changed_after_creation(store: Store) -> None:
    with pytest.raises(InvalidValue, match="realm is fixed"):
        store.set_setting("sip_realm", "other")
    assert store.realm == "deskpbx"


# -- extensions --------------------------------------------------------------------------------


def test_add_extension_stores_ha1_for_both_algorithms(store: Store) -> None:
    ext = store.add_extension("201", PASSWORD, "Alice", now=1700000000.5)
    assert ext == Extension(
        number="201",
        name="Alice",
        ha1_md5=compute_ha1("201", "deskpbx", PASSWORD, "MD5"),
        ha1_sha256=compute_ha1("201", "deskpbx", PASSWORD, "SHA-256"),
        enabled=True,
        record_policy=RecordPolicy.NEVER,
        permission=PermissionClass.NATIONAL,
        created=1700000000.5,
    )
    assert len(ext.ha1_md5) == 32 and len(ext.ha1_sha256) == 64
    assert store.get_extension("201") == ext


def test_no_plaintext_password_in_the_database_files(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as store:
        store.add_extension("201", "Plain-Text-Secret-1")
        store.set_password("201", "Plain-Text-Secret-2")
        blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert len(blob) > 4096
    assert b"Plain-Text-Secret" not in blob
    assert compute_ha1("201", "deskpbx", "Plain-Text-Secret-2").encode() in blob


def test_duplicate_extension_is_rejected(store: Store) -> None:
    store.add_extension("201", PASSWORD, "Alice")
    with pytest.raises(DuplicateExtension, match="^extension 201 already exists$"):
        store.add_extension("201", PASSWORD, "Bob")
    assert store.get_extension("201").name == "Alice"


@pytest.mark.parametrize("number", ["1", "12345678901", "20a", "", " 201", "2 01", "٢٠١", "+201"])
def test_malformed_numbers_are_rejected(store: Store, number: str) -> None:
    with pytest.raises(InvalidValue, match="invalid extension number .*use 2 to 10 digits"):
        store.add_extension(number, PASSWORD)
    assert store.list_extensions() == []


@pytest.mark.parametrize("number", ["10", "1234567890", "0042"])
def test_boundary_numbers_are_accepted(store: Store, number: str) -> None:
    assert store.add_extension(number, PASSWORD).number == number


@pytest.mark.parametrize(
    ("number", "password", "message"),
    [
        ("201", "short", "too short: use at least 8 characters"),
        ("201", "1234567", "too short"),
        ("12345678", "12345678", "must not be the extension number"),
    ],
)
def test_weak_passwords_are_rejected(
    store: Store, number: str, password: str, message: str
) -> None:
    with pytest.raises(WeakPassword, match=message):
        store.add_extension(number, password)
    assert store.find_extension(number) is None


def test_eight_character_password_is_enough(store: Store) -> None:
    store.add_extension("201", "abcdefgh")
    assert store.get_extension("201").ha1_md5 == compute_ha1("201", "deskpbx", "abcdefgh")


def test_unknown_policy_and_permission_are_rejected(store: Store) -> None:
    with pytest.raises(InvalidValue, match="record policy must be one of: always, never"):
        store.add_extension("201", PASSWORD, record_policy="sometimes")
    with pytest.raises(InvalidValue, match="permission class must be one of: internal"):
        store.add_extension("201", PASSWORD, permission="galactic")


def test_policies_accept_stored_text(store: Store) -> None:
    ext = store.add_extension("201", PASSWORD, record_policy="on_demand", permission="internal")
    assert ext.record_policy is RecordPolicy.ON_DEMAND
    assert store.get_extension("201").permission is PermissionClass.INTERNAL


def test_list_extensions_in_numeric_order(store: Store) -> None:
    for number in ["300", "20", "1000", "201", "21"]:
        store.add_extension(number, PASSWORD)
    assert [e.number for e in store.list_extensions()] == ["20", "21", "201", "300", "1000"]


def test_get_unknown_extension_raises_and_find_returns_none(store: Store) -> None:
    with pytest.raises(UnknownExtension, match="^no extension 999$"):
        store.get_extension("999")
    assert store.find_extension("999") is None


def test_remove_extension(store: Store) -> None:
    store.add_extension("201", PASSWORD)
    store.add_extension("202", PASSWORD)
    store.remove_extension("201")
    assert [e.number for e in store.list_extensions()] == ["202"]
    with pytest.raises(UnknownExtension, match="no extension 201"):
        store.remove_extension("201")


def test_set_password_replaces_both_ha1(store: Store) -> None:
    before = store.add_extension("201", PASSWORD)
    after = store.set_password("201", "another-password")
    assert after.ha1_md5 == compute_ha1("201", "deskpbx", "another-password", "MD5")
    assert after.ha1_sha256 == compute_ha1("201", "deskpbx", "another-password", "SHA-256")
    assert after.ha1_md5 != before.ha1_md5
    assert after.created == before.created


def test_set_password_checks_strength_and_existence(store: Store) -> None:
    store.add_extension("201", PASSWORD)
    with pytest.raises(WeakPassword):
        store.set_password("201", "201")
    with pytest.raises(UnknownExtension):
        store.set_password("202", PASSWORD)
    assert store.get_extension("201").ha1_md5 == compute_ha1("201", "deskpbx", PASSWORD)


def test_update_extension_changes_only_given_fields(store: Store) -> None:
    store.add_extension("201", PASSWORD, "Alice")
    updated = store.update_extension("201", enabled=False, record_policy="always")
    assert (updated.name, updated.enabled, updated.record_policy, updated.permission) == (
        "Alice",
        False,
        RecordPolicy.ALWAYS,
        PermissionClass.NATIONAL,
    )
    renamed = store.update_extension("201", name="Alice Smith", permission="international")
    assert renamed.name == "Alice Smith"
    assert renamed.enabled is False
    assert renamed.permission is PermissionClass.INTERNATIONAL


def test_update_unknown_extension_raises(store: Store) -> None:
    with pytest.raises(UnknownExtension):
        store.update_extension("555", enabled=True)
    with pytest.raises(UnknownExtension):
        store.update_extension("555")


def test_two_stores_on_one_file_see_each_others_writes(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as server, Store.in_dir(tmp_path) as cli:
        cli.add_extension("201", PASSWORD)
        assert server.get_extension("201").number == "201"
        assert server.nonce_secret == cli.nonce_secret
