"""``prefix_cache``: the share of the prompt's prefix a backend already holds in its KV cache.

    value_i = cached_blocks_i / N

``N`` is the number of the request's prefix block hashes (``routing.prefix``); ``cached_blocks_i`` is the
longest leading run of them the shared prefix index holds for backend i. The store evaluates it at the
moment of the pick, so an affinity learned on any replica counts at once, and records the request's blocks
on the winner. A bounded-load guard (``guard_eps``, ``guard_slack``) withholds the term from a backend whose
load is above ``(1 + guard_eps) x mean + guard_slack``, so cache hits cannot pile onto an overloaded one.
Each backend's share of the index is capped near its KV capacity (``cache_config_info``: block_size x
num_gpu_blocks tokens, in gateway blocks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from gateway.routing.plugins import Guard, GuardParams, Ratings
from gateway.routing.prefix import CHARS_PER_TOKEN
from gateway.routing.scorers.context import BuildContext
from gateway.routing.types import Candidate, RequestFeatures

TYPE = "prefix_cache"


Params = GuardParams


class PrefixCache:
    type: ClassVar[str] = TYPE
    reads: ClassVar[frozenset[str]] = frozenset({"prefix_blocks", "kv_capacity", "queue", "in_flight"})

    def __init__(self, params: Params, context: BuildContext) -> None:
        self.guard: Guard | None = params.guard()
        self._block_tokens = context.prefix_block_chars / CHARS_PER_TOKEN

    def score(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> Ratings:
        blocks = len(request.prefix_blocks)
        return Ratings(
            [0.0] * len(candidates),
            per_cached_block=1.0 / blocks if blocks else 0.0,
            reasons="affinity" if blocks else "least_load",
            parts={"blocks": [float(blocks)] * len(candidates)},
            prefix_caps=[self._cap(c) for c in candidates] if blocks else None,
        )

    def _cap(self, candidate: Candidate) -> int | None:
        if not candidate.kv_capacity_tokens:
            return None
        return max(int(candidate.kv_capacity_tokens / self._block_tokens), 1)
