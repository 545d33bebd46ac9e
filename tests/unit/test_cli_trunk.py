"""`deskpbx trunk|route|did|group ...` through pbx.cli.main: exact output, exit status,
and `trunk test` against a small fake carrier on 127.0.0.1 (never the password in output)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx.cli import main
from pbx.sip.digest import compute_ha1, compute_response, parse_credentials
from pbx.sip.message import Request, parse_message
from pbx.store import Store

PASSWORD = "Carrier-Secret-77"


def run(tmp_path: Path, *argv: str) -> int:
    return main(["--data-dir", str(tmp_path), *argv])


def test_trunk_add_list_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "trunk", "add", "alpha", "--host", "127.0.0.1", "--port", "5070",
               "--username", "acct", "--password", PASSWORD, "--register",
               "--caller-id", "+4930111", "--prefix", "0", "--max-calls", "2") == 0  # fmt: skip
    assert run(tmp_path, "trunk", "add", "beta", "--host", "::1", "--transport", "tcp") == 0
    assert capsys.readouterr().out == (
        "added trunk alpha (127.0.0.1:5070 over UDP)\nadded trunk beta ([::1]:5060 over TCP)\n"
    )
    assert run(tmp_path, "trunk", "list") == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "USERNAME", "PASSWORD", "REGISTER",
                                "CALLER-ID", "PREFIX", "MAX", "ENABLED", "STATUS"]  # fmt: skip
    assert lines[1].split() == ["alpha", "127.0.0.1:5070", "over", "UDP", "acct", "set", "yes",
                                "+4930111", "0", "2", "yes", "unknown"]  # fmt: skip
    assert lines[2].split()[4:6] == ["-", "not"]
    with Store.in_dir(tmp_path) as store:
        assert store.get_trunk("alpha").password == PASSWORD
    assert run(tmp_path, "trunk", "add", "alpha", "--host", "h") == 2
    assert capsys.readouterr().err == "deskpbx: trunk alpha already exists\n"
    assert run(tmp_path, "trunk", "remove", "beta") == 0
    assert run(tmp_path, "trunk", "remove", "beta") == 2
    assert capsys.readouterr() == ("removed trunk beta\n", "deskpbx: no trunk beta\n")


def test_routes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(tmp_path, "trunk", "add", "alpha", "--host", "127.0.0.1")
    assert run(tmp_path, "route", "add", "local", "--pattern", "9|NXXXXXX", "--trunk", "alpha") == 0
    assert run(tmp_path, "route", "add", "intl", "--pattern", "9|011.", "--pattern", "re:^00\\d+$",
               "--trunk", "alpha", "--permission", "international",
               "--strategy", "round-robin", "--prepend", "+") == 0  # fmt: skip
    assert run(tmp_path, "route", "move", "intl", "1") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "routes now tried in this order: intl, local"
    assert run(tmp_path, "route", "list") == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[1] == ["1", "intl", "9|011.", "re:^00\\d+$", "0", "+", "-", "international",
                       "round-robin", "alpha"]  # fmt: skip
    assert rows[2][:2] == ["2", "local"]
    assert run(tmp_path, "route", "add", "bad", "--pattern", "9|NXQ", "--trunk", "alpha") == 2
    assert capsys.readouterr().err == "deskpbx: bad character 'Q' in dial pattern '9|NXQ'\n"
    assert run(tmp_path, "route", "add", "x", "--pattern", "X.", "--trunk", "ghost") == 2
    assert capsys.readouterr().err == "deskpbx: no trunk ghost\n"
    assert run(tmp_path, "route", "remove", "intl") == 0
    assert run(tmp_path, "route", "list") == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[:2] == ["1", "local"]


def test_groups_and_dids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for number in ("201", "202"):
        run(tmp_path, "ext", "add", number, "--password", "secret123")
    run(tmp_path, "trunk", "add", "alpha", "--host", "127.0.0.1")
    capsys.readouterr()
    assert run(tmp_path, "group", "add", "600", "201", "202", "--name", "Sales") == 0
    assert run(tmp_path, "group", "add", "601", "202", "201", "--strategy", "order") == 0
    assert run(tmp_path, "did", "add", "+4930555", "--group", "600", "--trunk", "alpha") == 0
    assert run(tmp_path, "did", "add", "4930556", "--extension", "201") == 0
    assert run(tmp_path, "did", "add", "4930557", "--softphone") == 0
    assert capsys.readouterr().out.splitlines() == [
        "added ring group 600: 201, 202 ring all at once",
        "added ring group 601: 202, 201 ring one after another",
        "inbound +4930555 now rings ring group 600",
        "inbound 4930556 now rings extension 201",
        "inbound 4930557 now rings the desktop softphone",
    ]
    assert run(tmp_path, "did", "list") == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["DID", "RINGS", "TRUNK"],
        ["+4930555", "ring", "group", "600", "alpha"],
        ["4930556", "extension", "201", "any"],
        ["4930557", "the", "desktop", "softphone", "any"],
    ]
    assert run(tmp_path, "group", "list") == 0
    assert capsys.readouterr().out.splitlines()[2].split() == ["601", "-", "order", "20", "202,201"]
    assert run(tmp_path, "did", "add", "1", "--extension", "299") == 2
    assert capsys.readouterr().err == "deskpbx: no extension 299\n"
    assert run(tmp_path, "group", "remove", "600") == 0
    assert run(tmp_path, "did", "remove", "4930557") == 0
    assert run(tmp_path, "did", "list") == 0
    assert "+4930555" not in capsys.readouterr().out  # went with its group


class FakeCarrier:
    """A UDP carrier on 127.0.0.1: OPTIONS 200, REGISTER 401 then 200/403 on the password."""

    def __init__(self, password: str, answer_options: bool = True) -> None:
        self.password = password
        self.answer_options = answer_options
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: list[Request] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        for _ in range(500):  # bounded: 500 * 0.2 s at most
            if self.stop.is_set():
                return
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            request = parse_message(data)
            assert isinstance(request, Request)
            self.seen.append(request)
            response = self.answer(request)
            if response is not None:
                self.sock.sendto(bytes(response), source)

    def answer(self, request: Request) -> object:
        if request.method == "OPTIONS":
            return request.make_response(200, to_tag="c") if self.answer_options else None
        value = request.headers.get("Authorization")
        if value is None:
            challenge = 'Digest realm="carrier", nonce="abc", qop="auth", algorithm=MD5'
            return request.make_response(401, to_tag="c", headers=[("WWW-Authenticate", challenge)])
        creds = parse_credentials(value)
        ha1 = compute_ha1("acct", "carrier", self.password, "MD5")
        expected = compute_response(
            ha1, "MD5", "REGISTER", creds.uri, creds.nonce, qop=creds.qop,  # type: ignore[union-attr]
            nc=creds.nc, cnonce=creds.cnonce,  # type: ignore[union-attr]
        )  # fmt: skip
        if creds.response != expected:  # type: ignore[union-attr]
            return request.make_response(403, to_tag="c")
        return request.make_response(200, to_tag="c", headers=[("Expires", "120")])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def carrier() -> Iterator[FakeCarrier]:
    fake = FakeCarrier(PASSWORD)
    yield fake
    fake.close()


def add_carrier(tmp_path: Path, port: int, password: str, *extra: str) -> None:
    assert run(tmp_path, "trunk", "add", "alpha", "--host", "127.0.0.1", "--port", str(port),
               "--username", "acct", "--password", password, *extra) == 0  # fmt: skip


def test_trunk_test_registers_and_unregisters(
    tmp_path: Path,
    carrier: FakeCarrier,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    add_carrier(tmp_path, carrier.port, PASSWORD, "--register")
    capsys.readouterr()
    assert run(tmp_path, "-v", "trunk", "test", "alpha") == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith(f"OPTIONS: alpha at 127.0.0.1:{carrier.port} over UDP answered 200")
    assert lines[0].endswith("the carrier is reachable.")
    assert lines[1:] == [
        "REGISTER as acct: accepted, registered for 120 s.",
        "The test registration was removed again; the PBX registers by itself.",
    ]
    assert PASSWORD not in out + err + caplog.text
    assert 'Authorization: Digest username="acct"' in caplog.text  # the -v trace has it
    methods = [(r.method, r.headers.get("Expires")) for r in carrier.seen]
    assert methods == [("OPTIONS", None), ("REGISTER", "3600"), ("REGISTER", "3600"),
                       ("REGISTER", "0"), ("REGISTER", "0")]  # fmt: skip


def test_trunk_test_reports_a_wrong_password(
    tmp_path: Path, carrier: FakeCarrier, capsys: pytest.CaptureFixture[str]
) -> None:
    add_carrier(tmp_path, carrier.port, "not-the-password", "--register")
    capsys.readouterr()
    assert run(tmp_path, "trunk", "test", "alpha") == 1
    assert capsys.readouterr().out.splitlines()[1] == (
        "REGISTER as acct: the carrier refused the username or password (403 Forbidden)."
    )


def test_trunk_test_reports_silence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeCarrier(PASSWORD, answer_options=False)
    try:
        add_carrier(tmp_path, fake.port, PASSWORD)
        capsys.readouterr()
        assert run(tmp_path, "trunk", "test", "alpha", "--timeout", "0.3") == 1
    finally:
        fake.close()
    assert capsys.readouterr().out == (
        f"OPTIONS: no answer from alpha at 127.0.0.1:{fake.port} over UDP within 0.3 s. "
        "Check the host, port and transport, and that no firewall drops SIP.\n"
    )
    assert run(tmp_path, "trunk", "test", "ghost") == 2


def test_a_trunk_by_name_without_port_uses_dns_srv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """RFC 3263 §4.2, as Asterisk and FreeSWITCH read a trunk given by domain."""
    assert run(tmp_path, "trunk", "add", "srv", "--host", "carrier.example") == 0
    assert run(tmp_path, "trunk", "add", "port", "--host", "carrier.example", "--port", "5070") == 0
    assert run(tmp_path, "trunk", "add", "off", "--host", "carrier.example", "--no-srv") == 0
    assert run(tmp_path, "trunk", "add", "ip", "--host", "192.0.2.1") == 0
    assert capsys.readouterr().out.splitlines() == [
        "added trunk srv (carrier.example (DNS SRV, else port 5060) over UDP)",
        "added trunk port (carrier.example:5070 over UDP)",
        "added trunk off (carrier.example:5060 over UDP)",
        "added trunk ip (192.0.2.1:5060 over UDP)",
    ]
    with Store.in_dir(tmp_path) as store:
        assert {t.name: t.srv for t in store.list_trunks()} == {
            "srv": True, "port": False, "off": False, "ip": False,
        }  # fmt: skip
    assert run(tmp_path, "trunk", "add", "bad", "--host", "192.0.2.1", "--srv") == 2
    assert capsys.readouterr().err == (
        "deskpbx: --srv needs a host name, not the address 192.0.2.1\n"
    )
    assert run(tmp_path, "trunk", "test", "srv", "--dns-server", "dns.example") == 2
    assert "--dns-server: bad DNS server 'dns.example'" in capsys.readouterr().err


def test_match_networks_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "trunk", "add", "twilio", "--host", "carrier.example",
               "--match", "203.0.113.0/30, 198.51.100.7") == 0  # fmt: skip
    with Store.in_dir(tmp_path) as store:
        assert store.get_trunk("twilio").match_networks == "203.0.113.0/30,198.51.100.7/32"
    capsys.readouterr()
    assert run(tmp_path, "trunk", "add", "bad", "--host", "carrier.example", "--match",
               "carrier.example") == 2  # fmt: skip
    assert capsys.readouterr().err == (
        "deskpbx: bad match network 'carrier.example': an IP address or CIDR\n"
    )


def test_lists_in_json_have_the_apis_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`list --json` for scripts: the objects GET /api/v1/trunks etc. return, no password."""
    import json

    assert run(tmp_path, "trunk", "add", "alpha", "--host", "carrier.example", "--username",
               "acct", "--password", PASSWORD, "--match", "203.0.113.0/24") == 0  # fmt: skip
    assert run(tmp_path, "route", "add", "out", "--pattern", "0|Z.", "--trunk", "alpha") == 0
    assert run(tmp_path, "ext", "add", "201", "--password", "secret-201") == 0
    assert run(tmp_path, "group", "add", "600", "201") == 0
    assert run(tmp_path, "did", "add", "4930555", "--group", "600") == 0
    capsys.readouterr()
    assert run(tmp_path, "trunk", "list", "--json") == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    [trunk] = json.loads(out)
    assert (trunk["name"], trunk["srv"], trunk["match_networks"], trunk["password_set"]) == (
        "alpha", True, "203.0.113.0/24", True,
    )  # fmt: skip
    assert "password" not in trunk
    assert run(tmp_path, "route", "list", "--json") == 0
    [route] = json.loads(capsys.readouterr().out)
    assert (route["name"], route["patterns"], route["trunks"]) == ("out", ["0|Z."], ["alpha"])
    assert run(tmp_path, "group", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"number": "600", "name": "", "strategy": "all", "ring_timeout": 20, "members": ["201"]}
    ]
    assert run(tmp_path, "did", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"number": "4930555", "target_kind": "group", "target": "600", "trunk": None}
    ]
    with Store.in_dir(tmp_path) as store:
        from pbx.store.views import trunk_view

        assert trunk == json.loads(json.dumps(trunk_view(store.get_trunk("alpha"))))


def test_ban_list_and_lift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import time

    with Store.in_dir(tmp_path) as store:
        store.save_ban("192.0.2.5", time.time() + 300, time.time())
    assert run(tmp_path, "ban", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ADDRESS", "LEFT"]
    assert lines[1].split()[0] == "192.0.2.5" and 298 <= int(lines[1].split()[1]) <= 300
    assert run(tmp_path, "ban", "list", "--json") == 0
    [item] = json.loads(capsys.readouterr().out)
    assert item["address"] == "192.0.2.5" and 298 <= item["seconds_left"] <= 300
    assert run(tmp_path, "ban", "lift", "192.0.2.5") == 0
    assert capsys.readouterr().out.startswith("lifted the ban of 192.0.2.5")
    assert run(tmp_path, "ban", "lift", "192.0.2.5") == 2
    assert capsys.readouterr().err == "deskpbx: 192.0.2.5 is not banned\n"
    assert run(tmp_path, "ban", "list") == 0
    assert capsys.readouterr().out == "no address is banned\n"
