"""Random bytes for tags, branches and nonce salts, drawn from the OS in blocks.

RFC 3261 19.3 wants tags "cryptographically random" (at least 32 bits) and 8.1.1.7 wants
branches unique; RFC 7616 §5.4 wants nonces unpredictable. `os.urandom` gives exactly that,
but one system call per 6-byte tag costs more than the rest of building the tag; a
registration used three of them. `EntropyPool` reads `BLOCK` bytes of `os.urandom` at a time
and hands out slices, each byte used once, so the values are the same OS randomness, only
fetched in bulk. The pool is refilled in a forked child (`os.register_at_fork`), which would
otherwise hand out the parent's bytes again, and a lock keeps two threads from taking the
same slice.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

BLOCK = 4096
"""Bytes fetched from the OS per refill."""


class EntropyPool:
    """`random_bytes(n)` and `token_hex(n)` backed by blocks of `os.urandom`."""

    def __init__(self, source: Callable[[int], bytes] = os.urandom, block: int = BLOCK) -> None:
        self._source = source
        self._block = block
        self._buffer = b""
        self._pos = 0
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the unused bytes (after fork: the parent may still hand them out)."""
        self._lock = threading.Lock()
        self._buffer, self._pos = b"", 0

    def random_bytes(self, count: int) -> bytes:
        with self._lock:
            pos = self._pos
            end = pos + count
            if end > len(self._buffer):
                self._buffer = self._source(max(self._block, count))
                pos, end = 0, count
            self._pos = end
            return self._buffer[pos:end]

    def token_hex(self, count: int) -> str:
        """`count` random bytes as 2*count lower-case hex digits (like secrets.token_hex)."""
        return self.random_bytes(count).hex()


POOL = EntropyPool()
random_bytes = POOL.random_bytes
token_hex = POOL.token_hex

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=POOL.reset)
