"""HA1 values as stored by the store (RFC 7616 §3.9.1 Mufasa example, RFC 2617 §3.5)."""

import pytest

from pbx.sip.digest import compute_ha1


def test_md5_ha1_matches_rfc2617_example() -> None:
    # HA1 from RFC 2617 §3.5 (Mufasa / testrealm@host.com / Circle Of Life).
    assert (
        compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
        == "939e7578ed9e3c518a452acee763bce9"
    )


def test_sha256_ha1_for_rfc7616_example() -> None:
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256")
    assert ha1 == "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"


def test_algorithm_name_is_case_insensitive() -> None:
    a = compute_ha1("alice", "pbx", "pw", "sha-256")
    assert a == compute_ha1("alice", "pbx", "pw", "SHA-256")
    assert len(a) == 64


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess", "SHA1", ""])
def test_unstorable_algorithms_are_rejected(algorithm: str) -> None:
    with pytest.raises(ValueError):
        compute_ha1("alice", "pbx", "pw", algorithm)
