"""The in-process prefix index: which backend holds which prefix blocks, bounded and forgetful.

Per backend, an LRU of block hash -> last use. A backend's share is capped (near its KV capacity in
gateway blocks) and entries older than the TTL do not count, so the index forgets what vLLM has most
likely evicted. The Redis store keeps the same structure as one sorted set per backend.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence


class PrefixIndex:
    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._held: dict[str, OrderedDict[str, float]] = {}

    def matched(self, backend_id: str, blocks: Sequence[str]) -> int:
        """How many leading blocks of ``blocks`` the backend holds (fresh ones only)."""
        held = self._held.get(backend_id)
        if not held:
            return 0
        oldest = self._clock() - self._ttl_s
        count = 0
        for block in blocks:
            last_use = held.get(block)
            if last_use is None or last_use < oldest:
                break
            count += 1
        return count

    def learn(self, backend_id: str, blocks: Sequence[str], cap: int) -> None:
        held = self._held.setdefault(backend_id, OrderedDict())
        now = self._clock()
        # Deepest block first, so a chain's leading blocks are the most recent: when the cap trims,
        # the tail goes before the head (vLLM also evicts a sequence's tail blocks first).
        for block in reversed(blocks):
            held[block] = now
            held.move_to_end(block)
        while len(held) > cap:
            held.popitem(last=False)

    def size(self, backend_id: str) -> int:
        return len(self._held.get(backend_id, ()))
