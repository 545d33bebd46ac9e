"""Kamailio as a child process: the peer the registration benchmark compares DeskPBX with.

`kamailio_binary()` finds the executable (installing Debian's kamailio and
kamailio-sqlite-modules with apt-get once if missing), `start_kamailio()` writes the
subscriber database and a config from kamailio.cfg beside this file into a scratch directory
and starts `kamailio -DD -E` (foreground, log to stderr) as a `sip_load.Child`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from tests.bench.sip_load import Child, password, spawn
from tests.integration.ports import free_port

KAMAILIO_TEMPLATE = Path(__file__).resolve().parent / "kamailio.cfg"


def _modules() -> Path:
    """Debian's multiarch module directory (found after an install, hence a function)."""
    found = sorted(Path("/usr/lib").glob("*/kamailio/modules"))
    return found[0] if found else Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")


def kamailio_binary() -> tuple[str | None, str]:
    """The kamailio executable, installing the Debian packages once if missing; else a reason."""
    found = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin")
    if found and (_modules() / "db_sqlite.so").exists():
        return found, ""
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return None, "Kamailio not installed and apt-get not usable here"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", "kamailio", "kamailio-sqlite-modules"]
    try:
        done = subprocess.run(install, env=env, capture_output=True, timeout=180, check=False)
        if done.returncode != 0:  # a fresh machine has no package lists yet
            subprocess.run([apt, "update", "-q"], env=env, capture_output=True, timeout=120,
                           check=False)  # fmt: skip
            done = subprocess.run(install, env=env, capture_output=True, timeout=180, check=False)
    except subprocess.TimeoutExpired:
        return None, "apt-get install kamailio timed out"
    found = shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin")
    if done.returncode != 0 or found is None:
        return None, f"apt-get install kamailio failed ({done.returncode})"
    return found, "installed kamailio with apt-get"


def kamailio_db(path: Path, extensions: list[str]) -> None:
    """auth_db's subscriber table (schema version 7 of Kamailio 5.6) with plaintext passwords."""
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE version (table_name VARCHAR(32) PRIMARY KEY, table_version INTEGER);"
            "INSERT INTO version VALUES ('subscriber', 7);"
            "CREATE TABLE subscriber (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " username VARCHAR(64) NOT NULL DEFAULT '', domain VARCHAR(64) NOT NULL DEFAULT '',"
            " password VARCHAR(64) NOT NULL DEFAULT '', ha1 VARCHAR(128) NOT NULL DEFAULT '',"
            " ha1b VARCHAR(128) NOT NULL DEFAULT '');"
            "CREATE UNIQUE INDEX account_idx ON subscriber (username, domain);"
        )
        db.executemany(
            "INSERT INTO subscriber (username, domain, password) VALUES (?, '127.0.0.1', ?)",
            [(user, password(user)) for user in extensions],
        )


def start_kamailio(
    binary: str, workdir: Path, extensions: list[str], cores: set[int] | None = None
) -> Child:
    kdir = workdir / "kamailio"
    kdir.mkdir(parents=True, exist_ok=True)
    db = kdir / "auth.sqlite"
    kamailio_db(db, extensions)
    port = free_port()
    text = KAMAILIO_TEMPLATE.read_text()
    fill = {"@PORT@": str(port), "@MPATH@": f"{_modules()}/", "@DB@": str(db)}
    for key, value in fill.items():
        text = text.replace(key, value)
    cfg = kdir / "kamailio.cfg"
    cfg.write_text(text)
    args = [binary, "-f", str(cfg), "-DD", "-E", "-m", "128", "-M", "16", "-P", str(kdir / "pid"),
            "-Y", str(kdir)]  # fmt: skip
    return spawn("kamailio", args, kdir, port, cores)
