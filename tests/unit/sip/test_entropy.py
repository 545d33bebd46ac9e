"""The entropy pool hands out OS randomness once each, refilling in blocks."""

from __future__ import annotations

import os

from pbx.sip.entropy import POOL, EntropyPool, token_hex


def _counting_source() -> tuple[list[int], EntropyPool]:
    calls: list[int] = []
    counter = iter(range(10_000))

    def source(count: int) -> bytes:
        calls.append(count)
        return bytes(next(counter) % 256 for _ in range(count))

    return calls, EntropyPool(source, block=16)


def test_slices_are_consecutive_and_never_reused() -> None:
    calls, pool = _counting_source()
    assert pool.random_bytes(6) == bytes(range(0, 6))
    assert pool.random_bytes(6) == bytes(range(6, 12))
    assert calls == [16]
    assert pool.random_bytes(6) == bytes(range(16, 22))  # 4 left: a new block, not a reuse
    assert calls == [16, 16]


def test_a_request_larger_than_a_block_is_served_whole() -> None:
    calls, pool = _counting_source()
    assert len(pool.random_bytes(40)) == 40
    assert calls == [40]


def test_reset_drops_unused_bytes() -> None:
    calls, pool = _counting_source()
    pool.random_bytes(2)
    pool.reset()
    assert pool.random_bytes(2) == bytes([16, 17])
    assert calls == [16, 16]


def test_tokens_are_hex_of_the_asked_length_and_distinct() -> None:
    tokens = {token_hex(6) for _ in range(5000)}
    assert len(tokens) == 5000
    assert all(len(t) == 12 and int(t, 16) >= 0 for t in tokens)


def test_a_forked_child_does_not_repeat_the_parents_bytes() -> None:
    if not hasattr(os, "fork"):
        return
    POOL.random_bytes(1)  # the pool holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, POOL.random_bytes(16))
        os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert child != POOL.random_bytes(16)
