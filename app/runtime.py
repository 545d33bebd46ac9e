"""The running phone behind the window: the embedded PBX, the user agent, their loop.

`start_runtime` is called by app.main (the composition root) and by the
end-to-end GUI tests. In the default, embedded mode it opens the PBX's
store, makes sure the softphone has its own extension (password in the OS
keyring, or in the store when there is none), starts the PBX with
`pbx.server.run_in_thread`, and then starts the user agent on the PBX's
loop, registered to it over loopback. In external mode there is no PBX:
the UA gets a loop of its own and registers to the configured server.

`Runtime.stop()` is the Quit path (design.md): hang up every call and
unregister, then `pbx.aclose()` (final answers, BYEs, CDRs), then stop the
loop and join its thread; each step bounded in time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.bridge import LoopThread
from app.secrets import ACCOUNT_SECRET, SecretStore, strong_password
from app.settings import AppSettings
from app.ua_phone import AudioDevice, UaPhone
from pbx.config import PbxConfig, parse_host_port
from pbx.net.local_address import WILDCARDS
from pbx.net.transport import Listen
from pbx.server import Pbx, run_in_thread
from pbx.store import Store
from pbx.ua import Account, UserAgent

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0


def extension_secret(number: str) -> str:
    return f"extension-{number}"


@dataclass
class Runtime:
    settings: AppSettings
    loop: asyncio.AbstractEventLoop
    phone: UaPhone
    account: Account
    store: Store | None = None
    """The GUI thread's own connection to the PBX's database (None: external PBX)."""
    pbx: Pbx | None = None
    thread: threading.Thread | None = None
    loop_thread: LoopThread | None = None
    stopped: bool = field(default=False)

    @property
    def server_text(self) -> str:
        """What a hard phone uses as its registrar: this machine's PBX address."""
        if self.pbx is None:
            return f"{self.account.server}:{self.account.port}"
        host, port = parse_host_port(self.settings.pbx_listen)
        return f"{host if host not in WILDCARDS else '<this computer’s IP>'}:{self.pbx.sip_port()}"

    async def boot(self, ua: UserAgent) -> None:
        """On the loop: open the UA's SIP port, then register (events report the outcome)."""
        await ua.start()
        self.phone.ua = ua
        await ua.register()

    def stop(self) -> None:
        """Quit: calls ended cleanly, CDRs written, the loop and its thread gone."""
        if self.stopped:
            return
        self.stopped = True
        jobs: list[Callable[[], Any]] = [self.phone.aclose]
        if self.pbx is not None:
            jobs.append(self.pbx.aclose)
        for job in jobs:
            try:
                asyncio.run_coroutine_threadsafe(job(), self.loop).result(STOP_TIMEOUT + 2)
            except Exception as exc:  # keep stopping the rest
                log.warning("while stopping: %r", exc)
        if self.loop_thread is not None:
            self.loop_thread.stop()
        elif self.thread is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(STOP_TIMEOUT)
        if self.store is not None:
            self.store.close()


def softphone_password(store: Store, secrets: SecretStore, number: str) -> str:
    """The softphone's extension on the embedded PBX, created on first start."""
    password = secrets.get(extension_secret(number))
    if store.find_extension(number) is None:
        password = password or strong_password()
        store.add_extension(number, password, "Desk phone")
    elif password is None:  # the secret was lost (new keyring): set a new one
        password = strong_password()
        store.set_password(number, password)
    secrets.set(extension_secret(number), password)
    return password


def start_runtime(
    settings: AppSettings,
    data_dir: Path,
    publish: Callable[[object], None],
    *,
    rtp_ports: tuple[int, int] | None = None,
    ua_rtp_ports: tuple[int, int] = (30000, 30999),
    audio: AudioDevice | None = None,
    pbx_overrides: dict[str, Any] | None = None,
) -> tuple[Runtime, UserAgent]:
    """Start the PBX (embedded mode) and build the UA; the caller submits `runtime.boot(ua)`."""
    if not settings.embedded:
        return _start_external(settings, data_dir, publish, ua_rtp_ports, audio)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.in_dir(data_dir)
    secrets = SecretStore(store)
    try:
        password = softphone_password(store, secrets, settings.extension)
        host, port = parse_host_port(settings.pbx_listen)
        config = PbxConfig(data_dir=data_dir, listen=(Listen(host, port),))
        if rtp_ports is not None:
            config = replace(config, rtp_ports=rtp_ports)
        config = replace(config, **(pbx_overrides or {}))
        loop, pbx, thread = run_in_thread(config)
    except BaseException:
        store.close()
        raise
    server = "127.0.0.1" if host in WILDCARDS or host == "127.0.0.1" else host
    account = Account(settings.extension, password, server, pbx.sip_port(),
                      display_name=settings.display_name)  # fmt: skip
    phone = UaPhone(publish, server, who=f"extension {settings.extension}")
    phone.audio = audio
    ua = UserAgent(account, ("127.0.0.1" if server == "127.0.0.1" else "0.0.0.0", 0),
                   phone.on_event, ua_rtp_ports)  # fmt: skip
    runtime = Runtime(settings, loop, phone, account, store, pbx, thread)
    return runtime, ua


def _start_external(
    settings: AppSettings,
    data_dir: Path,
    publish: Callable[[object], None],
    ua_rtp_ports: tuple[int, int],
    audio: AudioDevice | None,
) -> tuple[Runtime, UserAgent]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with Store.in_dir(data_dir) as store:  # the secret's fallback when there is no keyring
        password = SecretStore(store).get(ACCOUNT_SECRET) or ""
    account = Account(
        settings.username, password, settings.server, settings.port, settings.transport,
        settings.display_name, settings.domain or None,
    )  # fmt: skip
    runner = LoopThread()
    phone = UaPhone(publish, account.realm_host, who=account.aor.removeprefix("sip:"))
    phone.audio = audio
    ua = UserAgent(account, ("0.0.0.0", 0), phone.on_event, ua_rtp_ports)
    runtime = Runtime(settings, runner.loop, phone, account, loop_thread=runner)
    return runtime, ua
