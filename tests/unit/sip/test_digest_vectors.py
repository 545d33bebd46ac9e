"""Published digest vectors: RFC 7616 §3.9.1 (MD5 and SHA-256) and RFC 2617 §3.5."""

from __future__ import annotations

import pytest

from pbx.sip.digest import Credentials, compute_ha1, compute_response, parse_credentials
from pbx.sip.digest_client import DigestClient

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_REALM = "http-auth@example.org"
# RFC 7616 errata 4495: the password is "Circle of Life" with a lower-case "of".
RFC7616_PASSWORD = "Circle of Life"
RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

# The challenge of RFC 7616 §3.9.1, folded as printed there (SHA-256 first).
RFC7616_CHALLENGES = [
    'Digest\r\n       realm="http-auth@example.org",\r\n       qop="auth, auth-int",\r\n'
    "       algorithm=SHA-256,\r\n"
    f'       nonce="{RFC7616_NONCE}",\r\n       opaque="{RFC7616_OPAQUE}"',
    f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
    f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"',
]


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_response_from_stored_ha1(algorithm: str) -> None:
    ha1 = compute_ha1("Mufasa", RFC7616_REALM, RFC7616_PASSWORD, algorithm)
    response = compute_response(
        ha1,
        algorithm,
        "GET",
        "/dir/index.html",
        RFC7616_NONCE,
        qop="auth",
        nc="00000001",
        cnonce=RFC7616_CNONCE,
    )
    assert response == RFC7616_RESPONSES[algorithm]


def test_rfc7616_authorization_header_parses_to_the_example_values() -> None:
    header = (
        'Digest username="Mufasa",\r\n realm="http-auth@example.org",\r\n'
        ' uri="/dir/index.html",\r\n algorithm=SHA-256,\r\n'
        f' nonce="{RFC7616_NONCE}",\r\n nc=00000001,\r\n cnonce="{RFC7616_CNONCE}",\r\n'
        f' qop=auth,\r\n response="{RFC7616_RESPONSES["SHA-256"]}",\r\n'
        f' opaque="{RFC7616_OPAQUE}"'
    )
    creds = parse_credentials(header)
    assert creds == Credentials(
        username="Mufasa",
        realm=RFC7616_REALM,
        nonce=RFC7616_NONCE,
        uri="/dir/index.html",
        response=RFC7616_RESPONSES["SHA-256"],
        algorithm="SHA-256",
        cnonce=RFC7616_CNONCE,
        nc="00000001",
        qop="auth",
        opaque=RFC7616_OPAQUE,
    )


def test_client_reproduces_rfc7616_sha256_answer_choosing_sha256_over_md5() -> None:
    client = DigestClient("Mufasa", RFC7616_PASSWORD, cnonce_source=lambda: RFC7616_CNONCE)
    # MD5 offered first on purpose: the client must still pick SHA-256 (RFC 8760 §2.4).
    creds = client.credentials(list(reversed(RFC7616_CHALLENGES)), "GET", "/dir/index.html")
    assert creds.algorithm == "SHA-256"
    assert creds.qop == "auth"
    assert creds.nc == "00000001"
    assert creds.opaque == RFC7616_OPAQUE
    assert creds.response == RFC7616_RESPONSES["SHA-256"]


def test_client_reproduces_rfc7616_md5_answer_when_only_md5_offered() -> None:
    client = DigestClient("Mufasa", RFC7616_PASSWORD, cnonce_source=lambda: RFC7616_CNONCE)
    value = client.authorization(RFC7616_CHALLENGES[1], "GET", "/dir/index.html")
    assert f'response="{RFC7616_RESPONSES["MD5"]}"' in value
    assert "algorithm=MD5" in value


def test_rfc2617_example_response() -> None:
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = compute_response(
        ha1,
        "MD5",
        "GET",
        "/dir/index.html",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


def test_rfc2069_form_without_qop() -> None:
    # KD(HA1, nonce:HA2) with the RFC 2617 values; computed independently with md5sum.
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = compute_response(
        ha1, "MD5", "GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093"
    )
    assert response == "670fd8c2df070c60b045671b8b24ff02"


def test_auth_int_and_sess_change_the_response() -> None:
    ha1 = compute_ha1("alice", "pbx", "pw", "SHA-256")
    args = ("REGISTER", "sip:pbx", "n")
    plain = compute_response(ha1, "SHA-256", *args, qop="auth", nc="00000001", cnonce="c")
    integ = compute_response(
        ha1, "SHA-256", *args, qop="auth-int", nc="00000001", cnonce="c", body=b"x"
    )
    sess = compute_response(ha1, "SHA-256-sess", *args, qop="auth", nc="00000001", cnonce="c")
    assert len({plain, integ, sess}) == 3
    assert all(len(v) == 64 for v in (plain, integ, sess))
