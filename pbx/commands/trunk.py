"""`deskpbx trunk ...`: SIP trunks to carriers (add, list, remove, test).

The carrier password is stored as given (the digest HA1 needs the carrier's
realm, learnt only from its challenge) in the owner-only database file; `list`
shows "set" or "not set", never the password. `test NAME` runs standalone on
its own short-lived SIP endpoint (an ephemeral port): it sends OPTIONS and,
for a trunk that registers, a REGISTER (answering the challenge) followed by
an un-REGISTER, and says in plain words what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

from pbx.commands import UsageError
from pbx.commands.ext import format_table, print_json, with_store

if TYPE_CHECKING:
    from pbx.sip.message import Request, Response
    from pbx.sip.transport import NextHop
    from pbx.store import Store
    from pbx.store.trunks import Trunk

DEFAULT_TEST_TIMEOUT = 5.0
MAX_SERVERS_TRIED = 3
"""`trunk test` of a trunk whose DNS names several servers: how many it tries in turn."""


def register(subparsers: Any) -> None:
    trunk = subparsers.add_parser("trunk", help="manage SIP trunks to carriers")
    sub = trunk.add_subparsers(dest="trunk_command", metavar="SUBCOMMAND", required=True)

    add = sub.add_parser("add", help="add a trunk")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--host", required=True, help="the carrier's SIP host (name or address)")
    add.add_argument(
        "--port",
        type=int,
        default=None,
        help="the carrier's port (default 5060; naming one turns SRV off)",
    )
    add.add_argument(
        "--srv",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="find the carrier's servers through DNS SRV records (RFC 3263); "
        "default: on when --host is a name and no --port is given",
    )
    add.add_argument("--transport", default="UDP", help="UDP or TCP")
    add.add_argument(
        "--match",
        default="",
        metavar="NETWORKS",
        help="comma-separated IPs or CIDRs the carrier's calls also come from",
    )
    add.add_argument("--domain", default="", help="host part of the Request-URI (default: host)")
    add.add_argument("--username", default="", help="account at the carrier")
    add.add_argument("--password", default="", help="carrier password; '-' reads one stdin line")
    add.add_argument("--register", action="store_true", help="register with the carrier")
    add.add_argument("--expiry", type=int, default=3600, help="registration expiry, seconds")
    add.add_argument("--outbound-proxy", default="", metavar="HOST[:PORT]")
    add.add_argument("--caller-id", default="", help="the number presented to the carrier")
    add.add_argument("--prefix", default="", help="digits put in front of every number")
    add.add_argument("--max-calls", type=int, default=0, help="concurrent calls; 0 = no cap")
    add.add_argument("--pai", action="store_true", help="send P-Asserted-Identity")
    add.add_argument("--pass-x-headers", action="store_true", help="pass X- headers on")
    add.add_argument("--no-qualify", action="store_true", help="no OPTIONS keep-alives")
    add.add_argument("--disabled", action="store_true", help="add it switched off")
    add.set_defaults(handler=cmd_add)

    listing = sub.add_parser("list", help="list trunks (passwords are never shown)")
    listing.add_argument("--json", action="store_true", help="print a JSON array (as the API)")
    listing.set_defaults(handler=cmd_list)

    remove = sub.add_parser("remove", help="remove a trunk (and its DIDs and route entries)")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=cmd_remove)

    test = sub.add_parser("test", help="check that a trunk's carrier answers and accepts us")
    test.add_argument("name", metavar="NAME")
    test.add_argument("--timeout", type=float, default=DEFAULT_TEST_TIMEOUT, metavar="S")
    test.add_argument(
        "--dns-server",
        action="append",
        default=[],
        metavar="ADDRESS[:PORT]",
        help="DNS server for the trunk's SRV and address records (as serve)",
    )
    test.set_defaults(handler=cmd_test)


def _password(args: argparse.Namespace) -> str:
    if args.password != "-":
        return str(args.password)
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UsageError("no password on stdin")
    return line


@with_store
def cmd_add(args: argparse.Namespace, store: Store) -> int:
    from pbx.store.trunks import Trunk

    trunk = store.add_trunk(
        Trunk(
            name=args.name, host=args.host, port=5060 if args.port is None else args.port,
            transport=args.transport, srv=_srv(args), match_networks=args.match,
            domain=args.domain, username=args.username, password=_password(args),
            register=args.register, expiry=args.expiry, outbound_proxy=args.outbound_proxy,
            caller_id=args.caller_id, prefix=args.prefix, max_calls=args.max_calls,
            enabled=not args.disabled, qualify=not args.no_qualify, send_pai=args.pai,
            pass_x_headers=args.pass_x_headers, created=time.time(),
        )
    )  # fmt: skip
    print(f"added trunk {trunk.name} ({_where(trunk)})")
    return 0


def _srv(args: argparse.Namespace) -> bool:
    from pbx.sip.locate import is_address, wants_srv

    if args.srv is None:
        return wants_srv(args.host, port_given=args.port is not None)
    if args.srv and is_address(args.host):
        raise UsageError(f"--srv needs a host name, not the address {args.host}")
    return bool(args.srv)


def _where(trunk: Trunk) -> str:
    host = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
    if trunk.srv:
        return f"{host} (DNS SRV, else port {trunk.port}) over {trunk.transport}"
    return f"{host}:{trunk.port} over {trunk.transport}"


@with_store
def cmd_list(args: argparse.Namespace, store: Store) -> int:
    trunks = store.list_trunks()
    if args.json:
        from pbx.store.views import trunk_view

        print_json([trunk_view(item) for item in trunks])
        return 0
    if not trunks:
        print("no trunks yet; add one with: deskpbx trunk add NAME --host HOST")
        return 0
    rows = [
        [t.name, _where(t), t.username or "-", "set" if t.password_set else "not set",
         "yes" if t.register else "no", t.caller_id or "-", t.prefix or "-",
         str(t.max_calls) if t.max_calls else "-", "yes" if t.enabled else "no", t.status.value]
        for t in trunks
    ]  # fmt: skip
    headers = ["NAME", "ADDRESS", "USERNAME", "PASSWORD", "REGISTER", "CALLER-ID", "PREFIX",
               "MAX", "ENABLED", "STATUS"]  # fmt: skip
    print(format_table(headers, rows))
    return 0


@with_store
def cmd_remove(args: argparse.Namespace, store: Store) -> int:
    store.remove_trunk(args.name)
    print(f"removed trunk {args.name}")
    return 0


@with_store
def cmd_test(args: argparse.Namespace, store: Store) -> int:
    trunk = store.get_trunk(args.name)
    if args.timeout <= 0 or args.timeout > 60:
        raise UsageError("--timeout must be between 0 and 60 seconds")
    from pbx.commands.serve import dns_server_option

    lines, ok = asyncio.run(probe(trunk, args.timeout, dns_server_option(args.dns_server)))
    for line in lines:
        print(line)
    return 0 if ok else 1


async def probe(
    trunk: Trunk, timeout: float, dns_servers: tuple[tuple[str, int], ...] = ()
) -> tuple[list[str], bool]:
    """OPTIONS, then (if the trunk registers) REGISTER and un-REGISTER; plain-word lines."""
    from pbx.net.dns import Locator
    from pbx.outbound import OutboundDialer
    from pbx.sip.locate import is_address, srv_name

    hop = OutboundDialer.next_hop(trunk)
    if is_address(hop.host):
        lines, ok, _ = await _probe_at(trunk, hop, timeout, [])
        return lines, ok
    locator = Locator(dns_servers)
    try:
        targets = await locator.locate(hop)
    finally:
        await locator.aclose()
    asked = f"{srv_name(hop.host, hop.transport)} (SRV) or {hop.host}" if hop.srv else hop.host
    if not targets:
        return [f"DNS: no address for {asked}. Check the host name."], False
    shown = ", ".join(f"{t.host}:{t.port}" for t in targets)
    lines = [f"DNS: {asked} is {shown}."]
    for target in targets[:MAX_SERVERS_TRIED]:  # as the PBX does: the next when one is silent
        lines, ok, reached = await _probe_at(trunk, target, timeout, lines)
        if reached:
            break
    return lines, ok


async def _probe_at(
    trunk: Trunk, hop: NextHop, timeout: float, lines: list[str]
) -> tuple[list[str], bool, bool]:
    """The probe of one server: (lines, everything worked, the server answered OPTIONS)."""
    from pbx.net.local_address import LocalAddresses
    from pbx.net.transport import Listen, SipEndpoint
    from pbx.sip.core import SipCore
    from pbx.sip.events import ResponseReceived
    from pbx.sip.timers import TimerConfig
    from pbx.trunks import TrunkLink

    waiting: dict[object, asyncio.Future[Response | None]] = {}

    def on_event(event: object) -> None:
        tx = getattr(event, "tx", None)
        future = waiting.get(tx)
        if future is None or future.done():
            return
        if isinstance(event, ResponseReceived):
            if event.response.status >= 200:
                future.set_result(event.response)
        else:
            future.set_result(None)

    loop = asyncio.get_running_loop()
    wildcard = "::" if ":" in hop.host else "0.0.0.0"
    endpoint = SipEndpoint(loop, SipCore(TimerConfig()), on_event,
                           [Listen(wildcard, 0, (trunk.transport,))])  # fmt: skip

    async def ask(request: Request) -> Response | None:
        key = endpoint.send_request(request, hop)
        waiting[key] = loop.create_future()
        try:
            return await asyncio.wait_for(waiting[key], timeout)
        except TimeoutError:
            return None

    await endpoint.start()
    try:
        local = LocalAddresses(endpoint.addresses).face(hop.address, hop.transport).endpoint()
        link = TrunkLink(trunk, loop.time(), qualify_interval=0)
        shown = f"[{hop.host}]" if ":" in hop.host else hop.host
        server = f"{shown}:{hop.port} over {hop.transport}" if lines else _where(trunk)
        where = f"{trunk.name} at {server}"  # the server DNS named, when it named one
        started = loop.time()
        answer = await ask(link.options_request(local))
        if answer is None:
            lines.append(f"OPTIONS: no answer from {where} within {timeout:g} s. Check the "
                         "host, port and transport, and that no firewall drops SIP.")  # fmt: skip
            return lines, False, False
        ms = (loop.time() - started) * 1000
        lines.append(f"OPTIONS: {where} answered {answer.status} {answer.reason} in "
                     f"{ms:.0f} ms: the carrier is reachable.")  # fmt: skip
        if not trunk.register:
            return lines, True, True
        ok = await _try_register(link, local, ask, loop.time, lines)
        return lines, ok, True
    finally:
        await endpoint.close()


async def _try_register(link: Any, local: Any, ask: Any, now: Any, lines: list[str]) -> bool:
    who = f"REGISTER as {link.trunk.username}"
    for _ in range(3):  # the first try, its challenge, and one 423 or stale nonce
        request = link.register_request(local)
        answer = await ask(request)
        if answer is None:
            lines.append(f"{who}: no answer to the registration.")
            return False
        if not link.on_register_response(answer, now(), request):
            break
    if link.state.value != "registered":
        lines.append(f"{who}: {link.reason}.")
        return False
    lines.append(f"{who}: accepted, {link.reason}.")
    for _ in range(2):
        request = link.register_request(local, expires=0)
        answer = await ask(request)
        if answer is None or answer.status not in (401, 407):
            break
        if not link.answer_challenge(answer, request):
            break
    lines.append("The test registration was removed again; the PBX registers by itself.")
    return True
