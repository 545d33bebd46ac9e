"""pbx.b2bua_auth: an INVITE is challenged (407), verified against the extension's HA1, and
refused (403) when the authenticated user is not the one in From."""

from __future__ import annotations

from dataclasses import dataclass

from pbx.b2bua_auth import CallerAuth
from pbx.sip.digest import compute_ha1
from pbx.sip.digest_client import DigestClient
from pbx.sip.digest_server import DigestServer
from pbx.sip.message import Request, Response

REALM = "deskpbx.test"
NOW = 100.0


@dataclass
class Extension:
    number: str
    ha1_md5: str
    ha1_sha256: str
    enabled: bool = True


class Store:
    def __init__(self, *extensions: Extension) -> None:
        self.extensions = {e.number: e for e in extensions}

    def find_extension(self, number: str) -> Extension | None:
        return self.extensions.get(number)


def extension(number: str, password: str, enabled: bool = True) -> Extension:
    return Extension(
        number,
        compute_ha1(number, REALM, password, "MD5"),
        compute_ha1(number, REALM, password, "SHA-256"),
        enabled,
    )


def invite(from_user: str, authorization: str | None = None) -> Request:
    headers = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1"),
        ("From", f"<sip:{from_user}@127.0.0.1>;tag=a"),
        ("To", "<sip:1002@127.0.0.1>"),
        ("Call-ID", "c1@test"),
        ("CSeq", "2 INVITE"),
    ]
    if authorization is not None:
        headers.append(("Proxy-Authorization", authorization))
    return Request("INVITE", "sip:1002@127.0.0.1", headers)


def make_auth(*extensions: Extension) -> CallerAuth:
    server = DigestServer(REALM, b"0123456789abcdef0123", algorithms=("SHA-256", "MD5"))
    return CallerAuth(server, Store(*extensions))  # type: ignore[arg-type]


def answer_challenge(auth: CallerAuth, user: str, password: str, from_user: str) -> str | Response:
    challenge = auth.check(invite(from_user), NOW)
    assert isinstance(challenge, Response) and challenge.status == 407
    values = challenge.headers.getall("Proxy-Authenticate")
    authorization = DigestClient(user, password).authorization(values, "INVITE", "sip:1002@x")
    return auth.check(invite(from_user, authorization), NOW + 1)


def test_an_invite_without_credentials_is_challenged_with_407():
    response = make_auth(extension("1001", "pw")).check(invite("1001"), NOW)
    assert isinstance(response, Response) and response.status == 407
    challenges = response.headers.getall("Proxy-Authenticate")
    assert [c.split()[0] for c in challenges] == ["Digest", "Digest"]
    assert any("SHA-256" in c for c in challenges) and any("MD5" in c for c in challenges)
    assert all(f'realm="{REALM}"' in c for c in challenges)
    assert response.to_tag


def test_right_password_gives_the_callers_number():
    auth = make_auth(extension("1001", "pw"))
    assert answer_challenge(auth, "1001", "pw", "1001") == "1001"


def test_wrong_password_is_challenged_again():
    auth = make_auth(extension("1001", "pw"))
    response = answer_challenge(auth, "1001", "wrong", "1001")
    assert isinstance(response, Response) and response.status == 407


def test_disabled_extension_cannot_call():
    auth = make_auth(extension("1001", "pw", enabled=False))
    response = answer_challenge(auth, "1001", "pw", "1001")
    assert isinstance(response, Response) and response.status == 407


def test_calling_as_another_extension_is_forbidden():
    auth = make_auth(extension("1001", "pw"), extension("1003", "other"))
    response = answer_challenge(auth, "1001", "pw", "1003")
    assert isinstance(response, Response) and response.status == 403
    assert "From does not match" in (response.reason or "")
