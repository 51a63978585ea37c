"""``kv_usage``: a backend with more free KV cache is better.

    value_i = 1 - kv_usage_i

``kv_usage_i`` is vLLM's ``kv_cache_usage_perc`` (0..1) from the last scrape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import msgspec

from gateway.routing.plugins import Guard, Ratings
from gateway.routing.scorers.context import BuildContext
from gateway.routing.types import Candidate, RequestFeatures

TYPE = "kv_usage"


class Params(msgspec.Struct, forbid_unknown_fields=True):
    pass


class KvUsage:
    type: ClassVar[str] = TYPE
    reads: ClassVar[frozenset[str]] = frozenset({"kv_usage"})
    guard: Guard | None = None

    def __init__(self, params: Params, context: BuildContext) -> None:
        pass

    def score(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> Ratings:
        usage = [c.kv_usage for c in candidates]
        return Ratings([1.0 - u for u in usage], parts={"kv": usage})
