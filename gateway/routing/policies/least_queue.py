"""``least_queue``: the reference score, lowest wins.

    score = (queue_depth + in_flight + 1) * latency_ewma

- ``queue_depth``: vLLM's ``num_requests_waiting`` from the last scrape of the backend's /metrics;
- ``in_flight``: requests the gateway fleet has open there now (all replicas, via coordination);
- ``latency_ewma``: moving average of the TTFT the gateway observed on that backend. A backend with no
  observation yet takes the mean of the others (or ``default_latency_s``), so a new backend is neither
  starved nor flooded.

Ties are broken at random (injected RNG) so replicas do not herd onto the same backend.

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

from gateway.routing.params import convert_params
from gateway.routing.types import Candidate, RequestFeatures, RouteDecision

TYPE = "least_queue"


class Params(msgspec.Struct, forbid_unknown_fields=True):
    default_latency_s: float = 0.1


def scores(candidates: Sequence[Candidate], default_latency_s: float) -> dict[str, float]:
    known = [c.ttft_ewma_s for c in candidates if c.ttft_ewma_s is not None]
    fallback = sum(known) / len(known) if known else default_latency_s
    return {
        c.id: (c.queue_depth + c.in_flight + 1) * (c.ttft_ewma_s if c.ttft_ewma_s is not None else fallback)
        for c in candidates
    }


def lowest(score_by_id: Mapping[str, float], rng: random.Random) -> str:
    best = min(score_by_id.values())
    tied = sorted(i for i, s in score_by_id.items() if s == best)
    return tied[0] if len(tied) == 1 else rng.choice(tied)


class LeastQueue:
    name = TYPE

    def __init__(self, params: Params, rng: random.Random) -> None:
        self._params = params
        self._rng = rng

    def choose(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> RouteDecision:
        by_id = scores(candidates, self._params.default_latency_s)
        pick = lowest(by_id, self._rng)
        chosen = next(c for c in candidates if c.id == pick)
        return RouteDecision(
            pick,
            TYPE,
            "least_score",
            {"score": by_id[pick], "queue": chosen.queue_depth, "in_flight": float(chosen.in_flight)},
        )


def build(params: Mapping[str, Any], rng: random.Random) -> LeastQueue:
    return LeastQueue(convert_params(TYPE, params, Params), rng)
