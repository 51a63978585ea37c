from __future__ import annotations

import pytest

from loadtests.sim.kv_cache import KVCache, hash_blocks, max_cache_hit_blocks
from loadtests.sim.tokenizer import tokenize


def test_block_hashes_are_chained() -> None:
    a = hash_blocks(tokenize("x" * 4 * 64), 16)
    b = hash_blocks(tokenize("x" * 4 * 48 + "y" * 4 * 16), 16)
    assert len(a) == 4
    assert a[:3] == b[:3]
    assert a[3] != b[3]
    # the same block content after a different prefix hashes differently
    c = hash_blocks(tokenize("z" * 4 * 16 + "x" * 4 * 48), 16)
    assert c[1] != a[1]


def test_partial_block_not_hashed() -> None:
    assert len(hash_blocks(tokenize("a" * (4 * 16 * 2 + 4)), 16)) == 2


@pytest.mark.parametrize(("prompt", "expected"), [(738, 23), (736, 22), (32, 0), (33, 1), (1, 0)], ids=str)
def test_hit_cap_like_vllm(prompt: int, expected: int) -> None:
    assert max_cache_hit_blocks(prompt, 32) == expected


def test_refcounts_usage_and_lru_eviction() -> None:
    kv = KVCache(num_blocks=4, block_size=16)
    h = [bytes([i]) * 16 for i in range(4)]
    first = kv.allocate(2)
    kv.register(first[0], h[0])
    kv.register(first[1], h[1])
    assert kv.usage == 0.5
    kv.release(first)
    assert kv.usage == 0.0
    assert kv.lookup(h[:2], 8) == first
    # allocation takes never-used blocks first, then the freed request's tail before its head
    other = kv.allocate(3)
    assert first[1] in other
    assert first[0] not in other
    assert kv.lookup(h[:2], 8) == [first[0]]
    assert kv.evictions == 1
    # a hit on a free cached block takes a reference and removes it from the free queue
    kv.acquire([first[0]])
    assert kv.num_free_blocks == 0
    assert kv.usage == 1.0
    with pytest.raises(RuntimeError):
        kv.allocate(1)
