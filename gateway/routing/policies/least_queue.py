"""``least_queue``: the reference score, lowest wins.

    score = (queue_depth + in_flight + 1) * latency_ewma

- ``queue_depth``: vLLM's ``num_requests_waiting`` from the last scrape of the backend's /metrics;
- ``in_flight``: requests the gateway fleet has open there at the moment of the pick (all replicas; the
  store evaluates this term, so racing replicas see each other's reservations);
- ``latency_ewma``: moving average of the TTFT the gateway observed on that backend. A backend with no
  observation yet takes the mean of the others (or ``default_latency_s``), so a new backend is neither
  starved nor flooded.

Ties are broken at random (the injected RNG shuffles the candidates) so replicas do not herd.

    [routing]
    policy = "least_queue"
    [routing.params.least_queue]
    default_latency_s = 0.1
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from coordination.scoring import ScoreLine
from gateway.routing.params import convert_params
from gateway.routing.types import BuildContext, Candidate, RequestFeatures, RouteOption, RoutePlan

TYPE = "least_queue"


class Params(msgspec.Struct, forbid_unknown_fields=True):
    default_latency_s: float = 0.1


def least_queue_options(
    candidates: Sequence[Candidate], default_latency_s: float, rng: random.Random, reason: str
) -> tuple[RouteOption, ...]:
    """The reference score as score lines: base (queue + 1) * latency, plus latency per in-flight request."""
    known = [c.ttft_ewma_s for c in candidates if c.ttft_ewma_s is not None]
    fallback = sum(known) / len(known) if known else default_latency_s
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    options = []
    for c in shuffled:
        latency = c.ttft_ewma_s if c.ttft_ewma_s is not None else fallback
        line = ScoreLine(c.id, base=(c.queue_depth + 1) * latency, per_in_flight=latency, queue=c.queue_depth)
        options.append(RouteOption(line, reason, {"queue": c.queue_depth, "latency_s": latency}))
    return tuple(options)


class LeastQueue:
    name = TYPE
    uses_prefix = False

    def __init__(self, params: Params, rng: random.Random) -> None:
        self._params = params
        self._rng = rng

    def plan(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> RoutePlan:
        options = least_queue_options(candidates, self._params.default_latency_s, self._rng, "least_score")
        return RoutePlan(TYPE, options)


def build(params: Mapping[str, Any], context: BuildContext) -> LeastQueue:
    return LeastQueue(convert_params(TYPE, params, Params), context.rng)
