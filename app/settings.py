"""The softphone's own settings: which account, which audio devices (a JSON file).

Passwords are not in here: they go through app.secrets (the OS keyring, or
the PBX's store). The embedded PBX's settings (extensions, trunks) live in
its database and are edited through the settings dialogs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
EXTERNAL = "external"
SETTINGS_FILE = "deskphone.json"


@dataclass(frozen=True, slots=True)
class AppSettings:
    #: "embedded": register to the PBX inside the app; "external": any other PBX or provider.
    account_mode: str = EMBEDDED
    #: The softphone's extension on the embedded PBX (created on first start).
    extension: str = "1000"
    display_name: str = "Desk phone"
    server: str = ""
    port: int = 5060
    transport: str = "UDP"
    username: str = ""
    domain: str = ""
    #: SIP listen address of the embedded PBX.
    pbx_listen: str = "0.0.0.0:5060"
    input_device: str = ""  # "" follows the system default
    output_device: str = ""
    ring_device: str = ""

    @property
    def embedded(self) -> bool:
        return self.account_mode == EMBEDDED

    def with_changes(self, **changes: Any) -> AppSettings:
        return replace(self, **changes)


def load_settings(config_dir: Path) -> AppSettings:
    """The saved settings, or the defaults when the file is missing or unreadable."""
    path = config_dir / SETTINGS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return AppSettings()
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable settings %s: %s", path, exc)
        return AppSettings()
    known = {f.name for f in fields(AppSettings)}
    return AppSettings(**{k: v for k, v in data.items() if k in known})


def save_settings(config_dir: Path, settings: AppSettings) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / SETTINGS_FILE
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
    temp.replace(path)
