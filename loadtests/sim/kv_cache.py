"""A paged KV cache with automatic prefix caching, shaped like vLLM v1's block pool.

What routing can observe of a vLLM server's cache is reproduced here, block for block:

- a fixed number of blocks of ``block_size`` tokens (``num_gpu_blocks``), allocated as tokens are computed;
- a full block of prompt tokens is identified by a chained hash ``h_i = H(h_{i-1}, tokens of block i)``,
  so a block hash names the whole prefix up to and including that block;
- blocks carry reference counts; a block whose count drops to 0 keeps its hash and stays findable
  ("cached but free") until a new allocation needs the space: eviction is LRU over the free queue, and a
  finished request's blocks enter the queue tail-first, as vLLM frees them, so its last blocks go first;
- a new request's hit is the longest run of leading full blocks that are cached, capped at
  ``(num_prompt_tokens - 1) // block_size`` blocks because at least one prompt token must be computed to
  produce logits (vLLM: a 738-token prompt with 32-token blocks hits 736 tokens, not 738);
- usage = blocks with a reference count above 0 / all blocks (``vllm:kv_cache_usage_perc``).

Simplifications, stated: only prompt blocks are hashed (generated tokens fill uncached blocks, because
the simulator's output ids are not the tokenization of its output text); there is no reserved null block;
two blocks holding the same hash are not merged (the second one simply stays unhashed).
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict

_ROOT_HASH = b"vllm-sim-prefix-root"


def hash_blocks(token_ids: array[int], block_size: int) -> list[bytes]:
    """Chained hashes of the full blocks of ``token_ids`` (a trailing partial block gets none).

    Computed once per request: 16-byte BLAKE2b digests over the previous hash and the block's token bytes.
    """
    data = memoryview(token_ids).cast("B")
    step = block_size * token_ids.itemsize
    hashes: list[bytes] = []
    prev = _ROOT_HASH
    for start in range(0, (len(token_ids) // block_size) * step, step):
        prev = hashlib.blake2b(prev + data[start : start + step], digest_size=16).digest()
        hashes.append(prev)
    return hashes


def max_cache_hit_blocks(num_prompt_tokens: int, block_size: int) -> int:
    """vLLM's cap on a prefix hit: the last prompt token is always computed."""
    return max(0, (num_prompt_tokens - 1) // block_size)


class KVCache:
    """Block pool: reference counts, a hash -> block map and an LRU queue of free blocks.

    All operations are O(number of blocks touched); nothing scans the pool.
    """

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("num_blocks and block_size must be positive")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._ref = [0] * num_blocks
        self._hash: list[bytes | None] = [None] * num_blocks
        self._cached: dict[bytes, int] = {}
        # Free blocks in eviction order (front = least recently freed); values unused.
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self.evictions = 0

    # ---- observation -------------------------------------------------------------------------------
    @property
    def num_free_blocks(self) -> int:
        """Blocks with no reference, cached or not: what an allocation may take."""
        return len(self._free)

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - len(self._free)

    @property
    def usage(self) -> float:
        """Fraction of blocks referenced by a request (``vllm:kv_cache_usage_perc``)."""
        return (self.num_blocks - len(self._free)) / self.num_blocks

    @property
    def num_cached_blocks(self) -> int:
        """Blocks findable by hash, in use or not."""
        return len(self._cached)

    def is_cached(self, block_hash: bytes) -> bool:
        return block_hash in self._cached

    # ---- prefix lookup -----------------------------------------------------------------------------
    def lookup(self, block_hashes: list[bytes], max_blocks: int) -> list[int]:
        """Block ids of the longest run of leading blocks that are cached, at most ``max_blocks``."""
        hits: list[int] = []
        cached = self._cached
        for block_hash in block_hashes[:max_blocks]:
            block_id = cached.get(block_hash)
            if block_id is None:
                break
            hits.append(block_id)
        return hits

    def num_evictable(self, block_ids: list[int]) -> int:
        """How many of these (cached) blocks sit in the free queue, i.e. would leave it if acquired."""
        ref = self._ref
        return sum(1 for b in block_ids if ref[b] == 0)

    # ---- allocation --------------------------------------------------------------------------------
    def acquire(self, block_ids: list[int]) -> None:
        """Take a reference on cache-hit blocks (a free one leaves the free queue, keeping its hash)."""
        ref = self._ref
        for b in block_ids:
            if ref[b] == 0:
                del self._free[b]
            ref[b] += 1

    def allocate(self, n: int) -> list[int]:
        """Take ``n`` blocks from the front of the free queue, evicting whatever hash they held.

        The caller checks ``num_free_blocks`` first; asking for more is a bug.
        """
        if n > len(self._free):
            raise RuntimeError(f"KV cache: {n} blocks requested, {len(self._free)} free")
        out: list[int] = []
        free, ref, hashes = self._free, self._ref, self._hash
        for _ in range(n):
            b, _unused = free.popitem(last=False)
            old = hashes[b]
            if old is not None:
                hashes[b] = None
                if self._cached.get(old) == b:
                    del self._cached[old]
                self.evictions += 1
            ref[b] = 1
            out.append(b)
        return out

    def register(self, block_id: int, block_hash: bytes) -> None:
        """Mark a just-filled prompt block as holding ``block_hash`` (findable by later requests)."""
        if self._hash[block_id] is None and block_hash not in self._cached:
            self._hash[block_id] = block_hash
            self._cached[block_hash] = block_id

    def release(self, block_ids: list[int]) -> None:
        """Drop one reference per block; blocks reaching 0 join the free queue tail, last block first."""
        ref, free = self._ref, self._free
        for b in reversed(block_ids):
            ref[b] -= 1
            if ref[b] == 0:
                free[b] = None

    def reset_prefix_cache(self) -> None:
        """Forget every hash (vLLM's ``/reset_prefix_cache``); blocks in use keep their data."""
        self._cached.clear()
        self._hash = [None] * self.num_blocks
