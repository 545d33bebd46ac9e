"""`deskpbx serve`: run the PBX in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import ipaddress
import logging
from typing import Any

from pbx.commands import UsageError, data_dir
from pbx.config import ConfigError, PbxConfig, parse_host_port, parse_port_range
from pbx.net.dns import parse_nameserver
from pbx.net.transport import Listen
from pbx.sip.session_timer import MIN_SE


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the PBX (registrar, calls, relay) until stopped",
        description="Run the PBX in the foreground. SIGTERM/SIGINT end calls cleanly and exit 0.",
    )
    serve.add_argument(
        "--sip", metavar="HOST:PORT", action="append",
        help="SIP listen address for UDP and TCP (default 0.0.0.0:5060; repeat for more, "
        "e.g. --sip 0.0.0.0:5060 --sip [::]:5060)",
    )  # fmt: skip
    serve.add_argument(
        "--rtp-ports", metavar="LOW-HIGH", default="10000-20000",
        help="UDP port range for the RTP relay (default 10000-20000)",
    )  # fmt: skip
    serve.add_argument(
        "--public-address", metavar="ADDRESS",
        help="address to advertise in SIP and SDP when listening on a wildcard address "
        "(default: the local address that routes to each phone)",
    )  # fmt: skip
    serve.add_argument(
        "--http", metavar="HOST:PORT", default="127.0.0.1:8080",
        help="HTTP API address (default 127.0.0.1:8080; a bare port stays on 127.0.0.1; "
        "'off' runs no API)",
    )  # fmt: skip
    serve.add_argument(
        "--register-lane", choices=("on", "off"), default="on",
        help="answer plain UDP REGISTERs on the registrar's fast lane (default on; 'off' "
        "sends every request through the transaction layer)",
    )  # fmt: skip
    serve.add_argument(
        "--udp-receive-buffer", type=int, default=4 * 1024 * 1024, metavar="BYTES",
        help="receive buffer asked for on the SIP UDP sockets (default 4194304; Linux caps it "
        "at net.core.rmem_max; 0 keeps the system's default)",
    )  # fmt: skip
    serve.add_argument(
        "--max-calls", type=int, default=0, metavar="N",
        help="calls in progress beyond which a new call gets 503 Maximum Calls In Progress "
        "(default 0: no limit)",
    )  # fmt: skip
    serve.add_argument(
        "--max-call-rate", type=float, default=0.0, metavar="PER_SECOND",
        help="new calls per second beyond which one gets 503 Call Rate Exceeded, bursts of "
        "one second's worth allowed (default 0: no limit)",
    )  # fmt: skip
    serve.add_argument(
        "--auth-ban-after", type=int, default=20, metavar="N",
        help="ignore an address for --auth-ban-seconds after N wrong passwords from it within "
        "60 s (default 20; 0 turns bans off; loopback addresses are never banned)",
    )  # fmt: skip
    serve.add_argument(
        "--auth-ban-seconds", type=float, default=600.0, metavar="SECONDS",
        help="how long a ban lasts (default 600)",
    )  # fmt: skip
    serve.add_argument(
        "--auth-ban-exempt", default="127.0.0.1,::1", metavar="ADDRESSES",
        help="comma-separated addresses never banned (default 127.0.0.1,::1; '' for none), "
        "such as the office's own public address",
    )  # fmt: skip
    serve.add_argument(
        "--dns-server", action="append", default=[], metavar="ADDRESS[:PORT]",
        help="ask this DNS server for trunks' SRV and address records (repeatable; default: "
        "the system's resolvers)",
    )  # fmt: skip
    serve.add_argument("--no-answer-timeout", type=float, default=60.0, metavar="SECONDS")
    serve.add_argument(
        "--media-timeout", type=float, default=60.0, metavar="SECONDS",
        help="hang up a call when a phone sends no RTP or RTCP for this long (0: never)",
    )  # fmt: skip
    serve.add_argument(
        "--dialog-ping", type=float, default=0.0, metavar="SECONDS",
        help="send in-dialog OPTIONS to both phones of each connected call this often; a 481 "
        "or no answer ends the call (0, the default: never)",
    )  # fmt: skip
    serve.add_argument(
        "--session-min-se", type=int, default=90, metavar="SECONDS",
        help="the shortest RFC 4028 session timer a phone or carrier may ask for (422 below; "
        "at least 90, the RFC's floor)",
    )  # fmt: skip
    serve.add_argument(
        "--qualify-interval", type=float, default=30.0, metavar="SECONDS",
        help="OPTIONS keep-alive interval for registered phones; 0 turns it off",
    )  # fmt: skip
    serve.add_argument("--min-expires", type=int, default=60, metavar="SECONDS")
    serve.add_argument("--max-expires", type=int, default=3600, metavar="SECONDS")
    serve.add_argument(
        "--auth-algorithms", default="MD5", metavar="LIST",
        help="digest algorithms offered, in order (default MD5; SHA-256,MD5 offers both, "
        "for phones that support RFC 8760)",
    )  # fmt: skip
    serve.add_argument(
        "--recording-retention-days", type=float, metavar="DAYS",
        help="delete finished recordings older than this (default: keep them)",
    )  # fmt: skip
    serve.add_argument(
        "--recording-max-bytes", type=int, metavar="BYTES",
        help="delete the oldest finished recordings beyond this total size (default: no limit)",
    )  # fmt: skip
    serve.add_argument(
        "--recording-feature-code", default="*1", metavar="DIGITS",
        help="DTMF code that starts/pauses recording an on-demand call (default *1)",
    )  # fmt: skip
    serve.set_defaults(handler=cmd_serve)


def recording_extra(args: argparse.Namespace) -> dict[str, str]:
    """The recording settings as PbxConfig.extra keys (pbx.recording.RecordingSettings)."""
    days, size, code = (
        args.recording_retention_days,
        args.recording_max_bytes,
        args.recording_feature_code,
    )
    if (days is not None and days <= 0) or (size is not None and size <= 0):
        raise UsageError("--recording-retention-days and --recording-max-bytes must be positive")
    if not code or any(c not in "0123456789*#" for c in code):
        raise UsageError(f"--recording-feature-code {code!r}: use digits, * and #")
    extra = {"recording_feature_code": code}
    if days is not None:
        extra["recording_retention_days"] = str(days)
    if size is not None:
        extra["recording_max_bytes"] = str(size)
    return extra


def ban_exempt(text: str) -> tuple[str, ...]:
    """`--auth-ban-exempt`: IP addresses, comma-separated, in the form sources are seen in."""
    addresses = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            addresses.append(str(ipaddress.ip_address(item.strip("[]"))))
        except ValueError:
            raise UsageError(f"--auth-ban-exempt: {item!r} is not an IP address") from None
    return tuple(addresses)


def dns_server_option(texts: list[str]) -> tuple[tuple[str, int], ...]:
    """`--dns-server`, repeatable, as `serve` and `trunk test` take it; one line on error."""
    try:
        return tuple(parse_nameserver(text) for text in texts)
    except ValueError as exc:
        raise UsageError(f"--dns-server: {exc}") from None


def config_from_args(args: argparse.Namespace) -> PbxConfig:
    from pbx.api.app import parse_http_listen

    try:
        listen = tuple(
            Listen(host, port) for host, port in map(parse_host_port, args.sip or ["0.0.0.0:5060"])
        )
        rtp_ports = parse_port_range(args.rtp_ports)
        http = None if args.http.strip().lower() == "off" else parse_http_listen(args.http)
        algorithms = tuple(a.strip().upper() for a in args.auth_algorithms.split(",") if a.strip())
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    if not set(algorithms) <= {"SHA-256", "MD5"} or not algorithms:
        raise UsageError(f"--auth-algorithms {args.auth_algorithms!r}: use SHA-256 and/or MD5")
    if args.min_expires < 1 or args.max_expires < args.min_expires:
        raise UsageError("--min-expires must be at least 1 and not above --max-expires")
    if args.udp_receive_buffer < 0:
        raise UsageError("--udp-receive-buffer must be 0 (the system's default) or more bytes")
    if args.max_calls < 0 or not 0 <= args.max_call_rate < float("inf"):
        raise UsageError("--max-calls and --max-call-rate must be 0 (no limit) or positive")
    if args.auth_ban_after < 0 or not 0 < args.auth_ban_seconds < float("inf"):
        raise UsageError("--auth-ban-after must be 0 (off) or more, --auth-ban-seconds positive")
    exempt = ban_exempt(args.auth_ban_exempt)
    dns_servers = dns_server_option(args.dns_server)
    if args.no_answer_timeout <= 0 or args.qualify_interval < 0:
        raise UsageError("--no-answer-timeout must be positive, --qualify-interval not negative")
    if not 0 <= args.media_timeout < float("inf"):
        raise UsageError("--media-timeout must be 0 (never) or a number of seconds")
    if not 0 <= args.dialog_ping < float("inf"):
        raise UsageError("--dialog-ping must be 0 (never) or a number of seconds")
    if args.session_min_se < MIN_SE:
        raise UsageError(f"--session-min-se must be at least {MIN_SE} seconds (RFC 4028)")
    return PbxConfig(
        data_dir=data_dir(args),
        listen=listen,
        rtp_ports=rtp_ports,
        public_address=args.public_address,
        no_answer_timeout=args.no_answer_timeout,
        media_timeout=args.media_timeout,
        session_min_se=args.session_min_se,
        dialog_ping=args.dialog_ping,
        max_calls=args.max_calls,
        max_call_rate=args.max_call_rate,
        auth_ban_after=args.auth_ban_after,
        auth_ban_seconds=args.auth_ban_seconds,
        auth_ban_exempt=exempt,
        dns_servers=dns_servers,
        qualify_interval=args.qualify_interval,
        register_lane=args.register_lane == "on",
        udp_receive_buffer=args.udp_receive_buffer,
        min_expires=args.min_expires,
        max_expires=args.max_expires,
        default_expires=min(3600, args.max_expires),
        auth_algorithms=algorithms,
        http=http,
        extra=recording_extra(args),
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from pbx.net.transport import TransportError
    from pbx.server import run
    from pbx.store import StoreError

    config = config_from_args(args)
    if args.verbose:
        logging.getLogger("pbx.sip.trace").setLevel(logging.DEBUG)
    try:
        return run(config)
    except TransportError as exc:
        raise UsageError(str(exc)) from exc
    except StoreError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:  # e.g. the HTTP API's port is taken
        raise UsageError(exc.strerror or str(exc)) from exc
