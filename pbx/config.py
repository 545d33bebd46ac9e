"""The PBX's settings as one value, and the parsing of the forms users type.

One frozen `PbxConfig` is built by the entry point (the CLI or the desktop
app) and passed down; nothing deeper reads the environment or files.
Parse errors are `ConfigError` with a message a user can act on.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from pbx.net.transport import Listen
from pbx.sip.timers import TimerConfig


class ConfigError(ValueError):
    """A setting a user gave cannot be used; the message says why."""


HEARTBEAT_SETTING = "pbx_heartbeat"
"""Settings key of the running PBX's heartbeat (JSON: pid, since, seen, sip, http, version),
written by pbx.server and read by `deskpbx status`."""


@dataclass(frozen=True, slots=True)
class PbxConfig:
    data_dir: Path
    listen: tuple[Listen, ...] = (Listen("0.0.0.0", 5060),)
    rtp_ports: tuple[int, int] = (10000, 20000)
    #: The address put into Contact, Record-Route and SDP when listening on a
    #: wildcard address; None picks, per peer, the local address that routes to it.
    public_address: str | None = None
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    #: Seconds a callee may ring before the caller gets 480.
    no_answer_timeout: float = 60.0
    #: Seconds without RTP or RTCP from a phone in a connected call, not on hold, after
    #: which the call is hung up (pbx.b2bua_media); 0 never does.
    media_timeout: float = 60.0
    #: The shortest RFC 4028 session interval a phone or carrier may ask for: a shorter one
    #: is answered 422 with this Min-SE (pbx.b2bua_session). 90 s is the RFC's own floor.
    session_min_se: int = 90
    #: Seconds between in-dialog OPTIONS to both phones of a connected call; a 481 or no
    #: answer ends the call (pbx.b2bua_ping). 0, the default, sends none.
    dialog_ping: float = 0.0
    #: Calls in progress beyond which a new one gets 503 (pbx.admission); 0: no limit.
    max_calls: int = 0
    #: New calls per second beyond which one gets 503 (a token bucket); 0: no limit.
    max_call_rate: float = 0.0
    #: Seconds between OPTIONS keep-alives to registered phones; 0 turns them off.
    qualify_interval: float = 30.0
    #: Digest algorithms offered in challenges, in order of preference. MD5 alone by
    #: default, as Asterisk and FreeSWITCH do: several clients still in use (baresip
    #: 1.0, SIPp) fail outright when a SHA-256 challenge comes first instead of
    #: skipping it. HA1 for both is stored, so "SHA-256,MD5" can be turned on.
    auth_algorithms: tuple[str, ...] = ("MD5",)
    nonce_lifetime: float = 300.0
    #: Failed authentications (wrong passwords) within `auth_ban_window` seconds after which
    #: a source address is ignored for `auth_ban_seconds` (pbx.auth_ban); 0 turns bans off.
    auth_ban_after: int = 20
    auth_ban_window: float = 60.0
    auth_ban_seconds: float = 600.0
    #: Addresses never banned: the desktop softphone registers from this machine.
    auth_ban_exempt: tuple[str, ...] = ("127.0.0.1", "::1")
    #: DNS servers (address, port) for trunks' SRV and address lookups (pbx.net.dns);
    #: empty: the system's resolvers, and getaddrinfo for addresses.
    dns_servers: tuple[tuple[str, int], ...] = ()
    max_message_size: int = 65535
    tcp_idle_timeout: float = 600.0
    #: SO_RCVBUF bytes asked for on the SIP UDP sockets, so a burst that arrives while the
    #: loop is busy waits instead of being dropped (pbx.net.udp); 0 keeps the system's.
    udp_receive_buffer: int = 4 * 1024 * 1024
    #: The HTTP API's address; None runs no API (`serve` defaults to 127.0.0.1:8080).
    http: tuple[str, int] | None = None
    user_agent: str = "DeskPBX"
    #: Plain UDP REGISTERs take the registrar's fast lane (pbx.registrar_lane); False sends
    #: every request through the transaction layer (`serve --register-lane off`).
    register_lane: bool = True
    timers: TimerConfig = field(default_factory=TimerConfig)
    extra: dict[str, str] = field(default_factory=dict)


def parse_host_port(text: str, default_port: int = 5060) -> tuple[str, int]:
    """'0.0.0.0:5060', '[::1]:5070', '127.0.0.1', ':5080' or '5080' -> (host, port)."""
    text = text.strip()
    if not text:
        raise ConfigError("empty address: expected HOST:PORT, e.g. 0.0.0.0:5060")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ConfigError(f"{text!r}: missing ']' after an IPv6 address")
        port_text = rest.removeprefix(":") if rest else ""
        if rest and not rest.startswith(":"):
            raise ConfigError(f"{text!r}: expected [IPv6]:PORT")
    elif text.isdigit():
        host, port_text = "0.0.0.0", text
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        host = host or "0.0.0.0"
    elif text.count(":") > 1:
        host, port_text = text, ""
    else:
        host, port_text = text, ""
    port = _port(port_text, text) if port_text else default_port
    _check_host(host, text)
    return host, port


def parse_port_range(text: str) -> tuple[int, int]:
    """'10000-20000' -> (10000, 20000): an even start and room for at least one call."""
    low_text, sep, high_text = text.strip().partition("-")
    if not sep:
        raise ConfigError(f"{text!r}: expected LOW-HIGH, e.g. 10000-20000")
    low, high = _port(low_text, text), _port(high_text, text)
    if low >= high:
        raise ConfigError(f"{text!r}: LOW must be below HIGH")
    if high - low + 1 < 4:
        raise ConfigError(f"{text!r}: the range needs at least 4 ports (two RTP/RTCP pairs)")
    return low, high


def _port(text: str, whole: str) -> int:
    if not text.isdigit():
        raise ConfigError(f"{whole!r}: {text!r} is not a port number")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{whole!r}: port {port} is outside 1-65535")
    return port


def _check_host(host: str, whole: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host.split(".")
    if not host or not all(label and (label.replace("-", "").isalnum()) for label in labels):
        raise ConfigError(f"{whole!r}: {host!r} is neither an IP address nor a host name")
