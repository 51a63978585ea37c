"""``round_robin``: each candidate in turn.

Inputs: the candidate ids only (score = position in this turn's rotation, in-flight ignored). The turn
counter is local to the replica and starts at a random turn, so N replicas fed in step by a client's own
round robin do not all send their first, second... request to the same backend.

    [routing]
    policy = "round_robin"
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from coordination.scoring import ScoreLine
from gateway.routing.types import BuildContext, Candidate, RequestFeatures, RouteOption, RoutePlan

TYPE = "round_robin"


class RoundRobin:
    name = TYPE
    uses_prefix = False

    def __init__(self, rng: random.Random) -> None:
        self._turn = rng.randrange(1 << 30)

    def plan(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> RoutePlan:
        ordered = sorted(candidates, key=lambda c: c.id)
        start = self._turn % len(ordered)
        self._turn += 1
        rotation = ordered[start:] + ordered[:start]
        return RoutePlan(TYPE, tuple(RouteOption(ScoreLine(c.id, float(i)), "turn") for i, c in enumerate(rotation)))


def build(params: Mapping[str, Any], context: BuildContext) -> RoundRobin:
    if params:
        raise ValueError(f"routing.params.{TYPE}: takes no parameters, got {sorted(params)}")
    return RoundRobin(context.rng)
