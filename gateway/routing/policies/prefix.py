"""``prefix``: expected prefix-cache hit against load, with a bounded-load guard.

For each candidate i (lowest score wins):

    score_i = load_weight * (queue_i + in_flight_i) / L
            + kv_weight * kv_usage_i
            - cache_weight * cached_blocks_i / N            (withheld by the guard, see below)
            - session_weight * [i is the session's backend]

- ``cached_blocks_i``: the longest leading run of the request's N prefix block hashes that the shared
  prefix index says backend i holds (``routing.prefix``); evaluated by the coordination store at the
  moment of the pick, so an affinity learned on any replica counts at once;
- ``queue_i``: vLLM's ``num_requests_waiting``; ``in_flight_i``: the fleet's open requests there, exact at
  the pick; ``L`` = the fleet's mean load + 1 (from this replica's latest view), which keeps the load term
  on the same scale as the cache fraction whatever the absolute load;
- bounded-load guard: a backend whose load exceeds ``(1 + guard_eps) x mean + guard_slack`` gets no cache
  bonus, so cache hits cannot pile onto an overloaded backend (the "death spiral" SGLang's router users
  hit); the absolute slack keeps a few requests of difference at low load from breaking affinity, since
  vLLM runs them in one batch anyway;
- session affinity: with ``routing.session_header`` set and present, the session's backend (rendezvous
  hashing of the session id, the same on every replica) gets a bonus unless it is over the guard.

Ties are broken at random. Each backend's share of the prefix index is capped near its KV capacity
(``cache_config_info``: block_size x num_gpu_blocks tokens, in gateway blocks).

    [routing]
    policy = "prefix"
    [routing.params.prefix]
    cache_weight = 2.0
    load_weight = 1.0
    kv_weight = 0.5
    guard_eps = 0.5
    guard_slack = 2.0
    session_weight = 1.0
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from coordination.scoring import DEFAULT_PREFIX_CAP, ScoreLine
from gateway.routing.hashing import rendezvous_order
from gateway.routing.params import convert_params
from gateway.routing.prefix import CHARS_PER_TOKEN
from gateway.routing.types import BuildContext, Candidate, RequestFeatures, RouteOption, RoutePlan

TYPE = "prefix"


class Params(msgspec.Struct, forbid_unknown_fields=True):
    cache_weight: float = 2.0
    load_weight: float = 1.0
    kv_weight: float = 0.5
    guard_eps: float = 0.5
    guard_slack: float = 2.0
    session_weight: float = 1.0


class PrefixAffinity:
    name = TYPE
    uses_prefix = True

    def __init__(self, params: Params, rng: random.Random, block_chars: int) -> None:
        self._p = params
        self._rng = rng
        self._block_tokens = block_chars / CHARS_PER_TOKEN

    def plan(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> RoutePlan:
        p = self._p
        loads = {c.id: c.queue_depth + c.in_flight for c in candidates}
        mean = sum(loads.values()) / len(loads)
        scale = mean + 1.0
        blocks = request.prefix_blocks
        per_block = p.cache_weight / len(blocks) if blocks else 0.0
        session_backend = None
        if request.session_id:
            session_backend = rendezvous_order(request.session_id, [(c.id, c.weight) for c in candidates])[0]
        shuffled = list(candidates)
        self._rng.shuffle(shuffled)
        options = []
        for c in shuffled:
            base = p.load_weight * c.queue_depth / scale + p.kv_weight * c.kv_usage
            reason = "affinity" if blocks else "least_load"
            if c.id == session_backend and loads[c.id] <= (1 + p.guard_eps) * mean + p.guard_slack:
                base -= p.session_weight
                reason = "session"
            line = ScoreLine(
                c.id, base, per_in_flight=p.load_weight / scale, per_cached_block=per_block, queue=c.queue_depth
            )
            parts = {"queue": c.queue_depth, "kv": c.kv_usage, "blocks": float(len(blocks))}
            options.append(RouteOption(line, reason, parts))
        caps = tuple(self._cap(c) for c in shuffled)
        return RoutePlan(TYPE, tuple(options), blocks, p.guard_eps, caps, p.guard_slack)

    def _cap(self, candidate: Candidate) -> int:
        if not candidate.kv_capacity_tokens:
            return DEFAULT_PREFIX_CAP
        return max(int(candidate.kv_capacity_tokens / self._block_tokens), 1)


def build(params: Mapping[str, Any], context: BuildContext) -> PrefixAffinity:
    return PrefixAffinity(convert_params(TYPE, params, Params), context.rng, context.prefix_block_chars)
