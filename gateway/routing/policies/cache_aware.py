"""``cache_aware``: the reference design's affinity by system prompt, with a spill valve.

- key = a stable hash of the request's system prompt (all leading system/developer messages);
- preferred backend = weighted rendezvous hashing of the key over the candidates, so every replica picks
  the same one and a backend leaving moves only its own keys;
- if the preferred backend's queue depth (vLLM ``num_requests_waiting``) is above ``queue_threshold``,
  or the request has no system prompt, the pick falls back to ``least_queue``.

    [routing]
    policy = "cache_aware"
    [routing.params.cache_aware]
    queue_threshold = 4
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from coordination.scoring import ScoreLine
from gateway.routing.hashing import rendezvous_order, stable_hash64
from gateway.routing.params import convert_params
from gateway.routing.policies.least_queue import least_queue_options
from gateway.routing.types import BuildContext, Candidate, RequestFeatures, RouteOption, RoutePlan

TYPE = "cache_aware"


class Params(msgspec.Struct, forbid_unknown_fields=True):
    queue_threshold: float = 4.0
    default_latency_s: float = 0.1


class CacheAware:
    name = TYPE
    uses_prefix = False

    def __init__(self, params: Params, rng: random.Random) -> None:
        self._params = params
        self._rng = rng

    def plan(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> RoutePlan:
        if request.system_prompt:
            key = f"{stable_hash64(request.system_prompt):016x}"
            preferred_id = rendezvous_order(key, [(c.id, c.weight) for c in candidates])[0]
            preferred = next(c for c in candidates if c.id == preferred_id)
            if preferred.queue_depth <= self._params.queue_threshold:
                line = ScoreLine(preferred_id, 0.0, queue=preferred.queue_depth)
                return RoutePlan(TYPE, (RouteOption(line, "affinity", {"queue": preferred.queue_depth}),))
            reason = "spill"
        else:
            reason = "no_system_prompt"
        return RoutePlan(TYPE, least_queue_options(candidates, self._params.default_latency_s, self._rng, reason))


def build(params: Mapping[str, Any], context: BuildContext) -> CacheAware:
    return CacheAware(convert_params(TYPE, params, Params), context.rng)
