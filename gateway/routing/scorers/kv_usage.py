"""``kv_usage``: a backend with more free KV cache is better.

    value_i = 1 - kv_usage_i

``kv_usage_i`` is vLLM's ``kv_cache_usage_perc`` (0..1) from the last scrape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import msgspec

from gateway.routing.plugins import Guard, Score
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

    def score(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> list[Score]:
        return [Score(1.0 - c.kv_usage, parts={"kv": c.kv_usage}) for c in candidates]
