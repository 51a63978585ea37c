"""``least_queue``: the reference router's score, as a rating.

    cost_i  = (queue_i + in_flight_i + 1) * latency_i
    value_i = 1 - cost_i / max_j(cost_j)

so the lowest cost rates highest. ``queue_i`` is vLLM's ``num_requests_waiting``; ``in_flight_i`` is
evaluated by the store at the pick; ``latency_i`` is the moving average of the time to first token the
gateway observed there. A backend with no observation yet takes the mean of the others (or
``default_latency_s``), so a new backend is neither starved nor flooded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

import msgspec

from gateway.routing.plugins import Guard, Ratings
from gateway.routing.scorers.context import BuildContext
from gateway.routing.types import Candidate, RequestFeatures

TYPE = "least_queue"


class Params(msgspec.Struct, forbid_unknown_fields=True):
    default_latency_s: Annotated[float, msgspec.Meta(gt=0)] = 0.1


class LeastQueue:
    type: ClassVar[str] = TYPE
    reads: ClassVar[frozenset[str]] = frozenset({"queue", "in_flight", "latency"})
    guard: Guard | None = None

    def __init__(self, params: Params, context: BuildContext) -> None:
        self._default_latency_s = params.default_latency_s

    def score(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> Ratings:
        known = [c.ttft_ewma_s for c in candidates if c.ttft_ewma_s]
        fallback = sum(known) / len(known) if known else self._default_latency_s
        latencies = [c.ttft_ewma_s or fallback for c in candidates]
        costs = [(c.load + 1) * lat for c, lat in zip(candidates, latencies, strict=True)]
        top = max(costs)
        return Ratings(
            [1.0 - cost / top for cost in costs],
            per_in_flight=[-lat / top for lat in latencies],
            reasons="least_score",
            parts={"queue": [c.queue_depth for c in candidates], "latency_s": latencies},
        )
