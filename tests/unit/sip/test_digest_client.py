"""DigestClient: algorithm choice, nc counting, cnonce, stale handling (RFC 7616 §3.4, RFC 8760)."""

from __future__ import annotations

import pytest

from pbx.sip.digest import Challenge, Credentials, compute_ha1, compute_response, parse_credentials
from pbx.sip.digest_client import DigestClient, choose_challenge
from pbx.sip.errors import ParseError

URI = "sip:pbx.example"


def fixed_random(n: int) -> bytes:
    return bytes(range(n))


def creds_of(value: str) -> Credentials:
    parsed = parse_credentials(value)
    assert isinstance(parsed, Credentials)
    return parsed


def test_cnonce_comes_from_the_injected_random_source() -> None:
    client = DigestClient("alice", "pw", random_bytes=fixed_random)
    creds = client.credentials('Digest realm="r", nonce="n", qop="auth"', "REGISTER", URI)
    assert creds.cnonce == "AAECAwQFBgcICQoL"  # base64url of bytes 0..11


def test_nc_counts_per_nonce_and_restarts_for_a_new_nonce() -> None:
    client = DigestClient("alice", "pw", random_bytes=fixed_random)
    first = 'Digest realm="r", nonce="n1", qop="auth"'
    ncs = [client.credentials(first, "INVITE", URI).nc for _ in range(3)]
    assert ncs == ["00000001", "00000002", "00000003"]
    stale = 'Digest realm="r", nonce="n2", qop="auth", stale=true'
    assert client.credentials(stale, "INVITE", URI).nc == "00000001"
    assert client.credentials(first, "INVITE", URI).nc == "00000004"


def test_nonce_memory_is_bounded() -> None:
    client = DigestClient("alice", "pw", max_nonces=2)
    for nonce in ("a", "b", "c"):
        client.next_nc(nonce)
    assert client.next_nc("a") == 1  # forgotten
    assert client.next_nc("c") == 2


def test_stale_challenge_is_answered_with_the_same_password() -> None:
    client = DigestClient("alice", "secret", random_bytes=fixed_random)
    creds = client.credentials(
        'Digest realm="r", nonce="fresh", algorithm=MD5, qop="auth", stale=true', "REGISTER", URI
    )
    ha1 = compute_ha1("alice", "r", "secret")
    expected = compute_response(
        ha1, "MD5", "REGISTER", URI, "fresh", qop="auth", nc="00000001", cnonce=creds.cnonce
    )
    assert creds.nonce == "fresh" and creds.response == expected


def test_strongest_supported_algorithm_wins_and_unknown_ones_are_skipped() -> None:
    offered = [
        'Digest realm="r", nonce="a", algorithm=SHA-512-256, qop="auth"',
        'Digest realm="r", nonce="b", algorithm=MD5, qop="auth"',
        'Basic realm="r"',
        'Digest realm="r", nonce="c", algorithm=SHA-256-sess, qop="auth"',
    ]
    assert choose_challenge(offered).nonce == "c"
    assert choose_challenge(offered[:3]).nonce == "b"


def test_no_usable_challenge_raises() -> None:
    with pytest.raises(ParseError) as info:
        choose_challenge(['Basic realm="r"', 'Digest realm="r", nonce="x", algorithm=SHA-1'])
    assert info.value.status == 401


def test_qop_preference_and_fallbacks() -> None:
    client = DigestClient("alice", "pw")
    both = client.credentials('Digest realm="r", nonce="n", qop="auth-int,auth"', "MESSAGE", URI)
    assert both.qop == "auth"
    only_int = client.credentials('Digest realm="r", nonce="m", qop="auth-int"', "MESSAGE", URI)
    assert only_int.qop == "auth-int"
    legacy = client.credentials('Digest realm="r", nonce="o"', "MESSAGE", URI)
    assert legacy.qop is None and legacy.nc is None and legacy.cnonce is None
    with pytest.raises(ParseError, match="qop"):
        client.credentials('Digest realm="r", nonce="p", qop="auth-conf"', "MESSAGE", URI)


def test_sess_algorithm_response_uses_session_ha1() -> None:
    client = DigestClient("alice", "pw", random_bytes=fixed_random)
    creds = client.credentials(
        Challenge("r", "n", algorithm="MD5-sess", qop=("auth",)), "REGISTER", URI
    )
    ha1 = compute_ha1("alice", "r", "pw")
    assert creds.algorithm == "MD5-sess"
    assert creds.response == compute_response(
        ha1, "MD5-sess", "REGISTER", URI, "n", qop="auth", nc="00000001", cnonce=creds.cnonce
    )


def test_header_value_echoes_opaque_and_round_trips() -> None:
    client = DigestClient("alice", "pw", random_bytes=fixed_random)
    value = client.authorization(
        'Digest realm="r", nonce="n", opaque="op\\"aque", algorithm=SHA-256, qop="auth"',
        "REGISTER",
        URI,
    )
    creds = creds_of(value)
    assert creds.opaque == 'op"aque'
    assert creds.algorithm == "SHA-256" and len(creds.response) == 64
    assert str(creds) == value
    assert value.startswith('Digest username="alice", realm="r", nonce="n", uri="sip:pbx.example"')
