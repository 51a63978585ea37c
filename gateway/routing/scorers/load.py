"""``load``: fewer requests queued and open on a backend is better.

    value_i = 1 - (queue_i + in_flight_i) / (2 * (mean load + 1))

1 when idle, 1/2 at the fleet's mean load + 1, 0 at twice that (clamped there). ``queue_i`` is vLLM's
``num_requests_waiting`` from the last scrape; ``in_flight_i`` is evaluated by the store at the pick, so
racing replicas see each other's reservations. Scaling by the mean keeps the term on the same scale as a
cache fraction whatever the absolute load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import msgspec

from gateway.routing.plugins import Guard, Ratings
from gateway.routing.scorers.context import BuildContext
from gateway.routing.types import Candidate, RequestFeatures

TYPE = "load"


class Params(msgspec.Struct, forbid_unknown_fields=True):
    pass


class Load:
    type: ClassVar[str] = TYPE
    reads: ClassVar[frozenset[str]] = frozenset({"queue", "in_flight"})
    guard: Guard | None = None

    def __init__(self, params: Params, context: BuildContext) -> None:
        pass

    def score(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> Ratings:
        loads = [c.load for c in candidates]
        scale = 2.0 * (sum(loads) / len(loads) + 1.0)
        slope = -1.0 / scale
        return Ratings(
            [1.0 + load * slope for load in loads],
            per_in_flight=[slope] * len(loads),
            parts={"queue": [c.queue_depth for c in candidates]},
        )
