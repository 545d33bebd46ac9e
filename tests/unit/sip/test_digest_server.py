"""DigestServer: stateless nonces, stale, replay, uri check, unknown users (RFC 7616, 8760)."""

from __future__ import annotations

import itertools
import re

import pytest

from pbx.sip.digest import Challenge, Credentials, compute_ha1, parse_challenges
from pbx.sip.digest_client import DigestClient
from pbx.sip.digest_server import AuthStatus, DigestServer, ReplayCache, same_uri

REALM = "pbx.example"
SECRET = b"0123456789abcdef-test-secret"
URI = "sip:pbx.example"
T0 = 1000.0  # fake monotonic clock, seconds
USERS = {"alice": "wonderland", "bob": "builder"}


def lookup(username: str, realm: str, algorithm: str) -> str | None:
    password = USERS.get(username)
    return None if password is None else compute_ha1(username, realm, password, algorithm)


def counter_bytes() -> object:
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def make_server(**kwargs: object) -> DigestServer:
    return DigestServer(REALM, SECRET, 300, random_bytes=counter_bytes(), **kwargs)  # type: ignore[arg-type]


def answer(
    server: DigestServer,
    user: str = "alice",
    password: str | None = None,
    *,
    now: float = T0,
    uri: str = URI,
    method: str = "REGISTER",
    algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
) -> tuple[DigestClient, list[str], str]:
    client = DigestClient(user, USERS.get(user, "x") if password is None else password)
    challenges = server.challenge(now, algorithms=algorithms)
    return client, challenges, client.authorization(challenges, method, uri)


def fields(challenge_value: str) -> tuple[str, ...]:
    """Param names and non-nonce values: the 'shape' an attacker can observe."""
    return tuple(re.sub(r'nonce="[^"]*"', 'nonce="*"', challenge_value).split(", "))


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_round_trip_ok_with_rspauth(algorithm: str) -> None:
    server = make_server()
    _, _, auth = answer(server, algorithms=(algorithm,))
    assert f"algorithm={algorithm}," in auth
    result = server.verify(auth, "REGISTER", lookup, T0 + 5, request_uri=URI)
    assert result.status is AuthStatus.OK
    assert result.ok and result.username == "alice" and result.challenges == ()
    assert result.authentication_info is not None
    assert re.fullmatch(
        r'qop=auth, rspauth="[0-9a-f]+", cnonce="[^"]+", nc=00000001', result.authentication_info
    )


def test_challenge_offers_sha256_then_md5_with_one_nonce() -> None:
    values = make_server().challenge(T0)
    parsed = [parse_challenges(v)[0] for v in values]
    assert [c.algorithm for c in parsed if isinstance(c, Challenge)] == ["SHA-256", "MD5"]
    assert isinstance(parsed[0], Challenge) and isinstance(parsed[1], Challenge)
    assert parsed[0].nonce == parsed[1].nonce
    assert parsed[0].qop == ("auth",) and parsed[0].realm == REALM and not parsed[0].stale
    assert values[0].startswith('Digest realm="pbx.example", nonce="')


def test_nonces_are_unique_and_carry_their_issue_time() -> None:
    server = make_server()
    first = server.make_nonce(T0)
    second = server.make_nonce(T0)
    assert first != second
    assert server.nonce_issued(first) == T0
    assert server.nonce_issued(first, context="other") is None


def test_stale_nonce_with_right_password_is_rechallenged_stale_true() -> None:
    server = make_server()
    _, _, auth = answer(server)
    result = server.verify(auth, "REGISTER", lookup, T0 + 301, request_uri=URI)
    assert result.status is AuthStatus.STALE
    assert len(result.challenges) == 2
    assert all("stale=true" in c for c in result.challenges)
    # The client answers the new challenge without a new password and gets in.
    client = DigestClient("alice", USERS["alice"])
    again = client.authorization(result.challenges, "REGISTER", URI)
    assert server.verify(again, "REGISTER", lookup, T0 + 302).status is AuthStatus.OK


def test_nonce_just_within_lifetime_is_accepted() -> None:
    server = make_server()
    _, _, auth = answer(server)
    assert server.verify(auth, "REGISTER", lookup, T0 + 300).status is AuthStatus.OK


def test_stale_nonce_with_wrong_password_is_not_stale() -> None:
    server = make_server()
    _, _, auth = answer(server, password="guess")
    result = server.verify(auth, "REGISTER", lookup, T0 + 400)
    assert result.status is AuthStatus.BAD_RESPONSE
    assert not any("stale=true" in c for c in result.challenges)


def test_tampered_nonce_is_invalid() -> None:
    server = make_server()
    _, _, auth = answer(server)
    nonce = re.search(r'nonce="([^"]+)"', auth)
    assert nonce
    value = nonce.group(1)
    tampered = value[:3] + ("A" if value[3] != "A" else "B") + value[4:]
    result = server.verify(auth.replace(value, tampered), "REGISTER", lookup, T0)
    assert result.status is AuthStatus.INVALID_NONCE
    assert len(result.challenges) == 2


def test_nonce_from_another_secret_or_realm_is_invalid() -> None:
    other = DigestServer(REALM, b"another-secret-of-16-bytes")
    _, _, auth = answer(other)
    assert make_server().verify(auth, "REGISTER", lookup, T0).status is AuthStatus.INVALID_NONCE


def test_wrong_password_and_unknown_user_look_the_same() -> None:
    server = make_server()
    _, _, wrong = answer(server, "alice", "nope")
    _, _, ghost = answer(server, "mallory", "nope")
    bad = server.verify(wrong, "REGISTER", lookup, T0)
    unknown = server.verify(ghost, "REGISTER", lookup, T0)
    assert bad.status is AuthStatus.BAD_RESPONSE
    assert unknown.status is AuthStatus.UNKNOWN_USER
    assert [fields(c) for c in bad.challenges] == [fields(c) for c in unknown.challenges]
    assert bad.authentication_info is None and unknown.authentication_info is None
    assert bad.challenges[0] != unknown.challenges[0]  # fresh nonces each time


def test_nc_replay_is_rejected_and_higher_nc_accepted() -> None:
    server = make_server()
    client, challenges, first = answer(server)
    assert server.verify(first, "REGISTER", lookup, T0 + 1).ok
    replay = server.verify(first, "REGISTER", lookup, T0 + 2)
    assert replay.status is AuthStatus.REPLAY
    assert all("stale=true" in c for c in replay.challenges)
    second = client.authorization(challenges, "REGISTER", URI)
    assert "nc=00000002" in second
    assert server.verify(second, "REGISTER", lookup, T0 + 3).ok
    assert server.verify(first, "REGISTER", lookup, T0 + 4).status is AuthStatus.REPLAY


def test_bad_responses_do_not_advance_the_count() -> None:
    server = make_server()
    client, challenges, good = answer(server)
    forged = re.sub(r"nc=\w+", "nc=00000009", good)
    assert server.verify(forged, "REGISTER", lookup, T0).status is AuthStatus.BAD_RESPONSE
    assert server.verify(good, "REGISTER", lookup, T0).ok


def test_uri_mismatch() -> None:
    server = make_server()
    _, _, auth = answer(server, uri="sip:other.example")
    result = server.verify(auth, "REGISTER", lookup, T0, request_uri=URI)
    assert result.status is AuthStatus.URI_MISMATCH
    assert "sip:other.example" in result.reason


def test_method_is_part_of_the_digest() -> None:
    server = make_server()
    _, _, auth = answer(server, method="INVITE")
    assert server.verify(auth, "BYE", lookup, T0).status is AuthStatus.BAD_RESPONSE


def test_wrong_realm_and_unsupported_algorithm() -> None:
    server = make_server()
    other = DigestServer("elsewhere", SECRET)
    _, _, auth = answer(other)
    assert server.verify(auth, "REGISTER", lookup, T0).status is AuthStatus.WRONG_REALM
    md5_only = make_server(algorithms=("MD5",))
    _, _, sha = answer(server, algorithms=("SHA-256",))
    assert md5_only.verify(sha, "REGISTER", lookup, T0).status is (AuthStatus.UNSUPPORTED_ALGORITHM)


def test_unknown_scheme_from_rfc4475_regaut01_gets_a_fresh_challenge() -> None:
    result = make_server().verify("NoOneKnowsThisScheme opaque-data=here", "REGISTER", lookup, T0)
    assert result.status is AuthStatus.UNKNOWN_SCHEME
    assert [c.split(",")[0] for c in result.challenges] == ['Digest realm="pbx.example"'] * 2


def test_malformed_header_is_a_result_not_an_exception() -> None:
    result = make_server().verify('Digest username="a', "REGISTER", lookup, T0)
    assert result.status is AuthStatus.MALFORMED
    assert "quoted-string" in result.reason
    assert len(result.challenges) == 2


def test_rfc2069_responses_only_when_allowed() -> None:
    strict = make_server(qop_options=())
    lenient = make_server(qop_options=(), allow_rfc2069=True)
    for server, expected in ((strict, AuthStatus.QOP_MISSING), (lenient, AuthStatus.OK)):
        client = DigestClient("bob", USERS["bob"])
        auth = client.authorization(server.challenge(T0), "REGISTER", URI)
        assert "qop" not in auth and "nc=" not in auth
        assert server.verify(auth, "REGISTER", lookup, T0).status is expected


def test_qop_without_nc_is_malformed() -> None:
    server = make_server()
    _, _, auth = answer(server)
    stripped = re.sub(r", nc=\w+", "", auth)
    assert server.verify(stripped, "REGISTER", lookup, T0).status is AuthStatus.MALFORMED


def test_auth_int_covers_the_body() -> None:
    server = make_server(qop_options=("auth-int",))
    client = DigestClient("alice", USERS["alice"])
    auth = client.authorization(server.challenge(T0), "MESSAGE", URI, body=b"hello")
    assert "qop=auth-int" in auth
    assert server.verify(auth, "MESSAGE", lookup, T0, body=b"hello").ok
    tampered = server.verify(auth, "MESSAGE", lookup, T0, body=b"hellO")
    assert tampered.status is AuthStatus.BAD_RESPONSE


def test_userhash_usernames_are_looked_up_as_sent() -> None:
    server = make_server()
    (value,) = server.challenge(T0, algorithms=("SHA-256",))
    challenge = parse_challenges(value)[0]
    assert isinstance(challenge, Challenge)
    client = DigestClient("alice", USERS["alice"])
    creds = client.credentials(
        Challenge(
            challenge.realm, challenge.nonce, algorithm="SHA-256", qop=("auth",), userhash=True
        ),
        "REGISTER",
        URI,
    )
    assert creds.userhash and creds.username != "alice" and len(creds.username) == 64
    seen: list[str] = []

    def by_hash(username: str, realm: str, algorithm: str) -> str | None:
        seen.append(username)
        return lookup("alice", realm, algorithm) if username == creds.username else None

    assert server.verify(creds, "REGISTER", by_hash, T0).ok
    assert seen == [creds.username]


def test_typed_credentials_are_accepted() -> None:
    server = make_server()
    client = DigestClient("alice", USERS["alice"])
    creds = client.credentials(server.challenge(T0), "REGISTER", URI)
    assert isinstance(creds, Credentials)
    assert server.verify(creds, "REGISTER", lookup, T0).ok


def test_replay_cache_is_bounded_and_eviction_never_reopens_replay() -> None:
    server = make_server(replay_cache_size=3)
    answers = [answer(server, now=T0 + i) for i in range(5)]
    for i, (_, _, auth) in enumerate(answers):
        assert server.verify(auth, "REGISTER", lookup, T0 + 10 + i).ok
    assert len(server.replay) == 3
    # The two oldest were evicted while still valid: replaying them must not pass.
    first = server.verify(answers[0][2], "REGISTER", lookup, T0 + 20)
    assert first.status is AuthStatus.STALE
    # The newest are still tracked: replay is detected as such.
    assert server.verify(answers[4][2], "REGISTER", lookup, T0 + 20).status is AuthStatus.REPLAY


def test_replay_cache_drops_expired_nonces_first() -> None:
    cache = ReplayCache(max_entries=2, lifetime=10)
    assert cache.accept("a", 1, issued=0.0, now=1.0)
    assert cache.accept("b", 1, issued=5.0, now=6.0)
    assert cache.accept("c", 1, issued=20.0, now=21.0)  # "a" and "b" expired by age
    assert len(cache) == 1 and cache.horizon == float("-inf")
    assert not cache.accept("c", 1, issued=20.0, now=22.0)
    assert cache.accept("c", 2, issued=20.0, now=22.0)


@pytest.mark.parametrize(
    ("digest_uri", "request_uri", "same"),
    [
        ("sip:pbx.example", "sip:pbx.example", True),
        ("SIP:PBX.Example", "sip:pbx.example", True),
        ("sip:Alice@pbx.example;transport=tcp", "<sip:Alice@PBX.example;transport=tcp>", True),
        ("sip:alice@pbx.example", "sip:Alice@pbx.example", False),
        ("sip:pbx.example:5060", "sip:pbx.example", False),
        ("sip:pbx.example", "sips:pbx.example", False),
    ],
)
def test_same_uri(digest_uri: str, request_uri: str, same: bool) -> None:
    assert same_uri(digest_uri, request_uri) is same


def test_short_secret_and_unknown_algorithm_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        DigestServer(REALM, b"short")
    with pytest.raises(ValueError, match="SHA-512"):
        DigestServer(REALM, SECRET, algorithms=("SHA-512",))


def test_nonce_from_the_future_is_stale_not_ok() -> None:
    # E.g. the caller's clock went backwards: never accept, re-challenge with stale=true.
    server = make_server()
    _, _, auth = answer(server, now=T0 + 60)
    result = server.verify(auth, "REGISTER", lookup, T0)
    assert result.status is AuthStatus.STALE
    assert all("stale=true" in c for c in result.challenges)


def test_context_binds_the_nonce() -> None:
    server = make_server()
    client = DigestClient("alice", USERS["alice"])
    auth = client.authorization(server.challenge(T0, context="10.0.0.7"), "REGISTER", URI)
    assert server.verify(auth, "REGISTER", lookup, T0, context="10.0.0.7").ok
    moved = server.verify(auth, "REGISTER", lookup, T0, context="10.0.0.8")
    assert moved.status is AuthStatus.INVALID_NONCE


def test_default_replay_cache_keeps_a_nonce_through_a_burst_of_registrations() -> None:
    """At 5,000 registrations/s a phone's answer may come after thousands of others' nonces
    were used (a retransmitted 401, a busy moment): it must not be refused as stale."""
    server = make_server()
    _, _, late = answer(server, algorithms=("MD5",))  # challenged first, answers last
    for i in range(10_000):
        _, _, auth = answer(server, "bob", now=T0 + i * 0.0002, algorithms=("MD5",))
        assert server.verify(auth, "REGISTER", lookup, T0 + i * 0.0002, request_uri=URI).ok
    result = server.verify(late, "REGISTER", lookup, T0 + 2.5, request_uri=URI)
    assert result.status is AuthStatus.OK
