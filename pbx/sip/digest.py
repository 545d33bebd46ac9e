"""SIP digest authentication (RFC 7616, RFC 8760 SHA-256 for SIP, RFC 3261 §22).

This module owns the digest arithmetic: HA1/HA2/response computation for MD5 and
SHA-256 (RFC 7616 §3.4.1-§3.4.3).  It is sans-IO: nothing here reads the clock or
touches a socket.
"""

from __future__ import annotations

import hashlib

__all__ = ["compute_ha1"]

#: Digest algorithm name (upper-cased, without "-sess") -> hashlib constructor name.
#: RFC 7616 §3.4.1 and RFC 8760 §2 (SHA-512-256 is not offered by SIP phones today).
_HASHES: dict[str, str] = {"MD5": "md5", "SHA-256": "sha256"}


def _hash_name(algorithm: str) -> str:
    try:
        return _HASHES[algorithm.upper()]
    except KeyError:
        raise ValueError(f"unsupported digest algorithm: {algorithm!r}") from None


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """Return hex H(username:realm:password) (RFC 7616 §3.4.2, A1 for the non-sess case).

    The store keeps this value instead of the password, one per algorithm, so the
    server can verify responses without ever knowing the secret.  "-sess" variants
    depend on nonce/cnonce and so cannot be stored: they are rejected here.
    """
    data = f"{username}:{realm}:{password}".encode()
    return hashlib.new(_hash_name(algorithm), data).hexdigest()
