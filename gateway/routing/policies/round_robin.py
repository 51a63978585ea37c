"""``round_robin``: each candidate in turn.

Inputs: the candidate ids only. The turn counter is local to the replica: with N replicas the fleet
still sees an even spread, each replica cycling independently.

    [routing]
    policy = "round_robin"
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.routing.types import Candidate, RequestFeatures, RouteDecision

TYPE = "round_robin"


class RoundRobin:
    name = TYPE

    def __init__(self) -> None:
        self._turn = 0

    def choose(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> RouteDecision:
        ordered = sorted(candidates, key=lambda c: c.id)
        pick = ordered[self._turn % len(ordered)]
        self._turn += 1
        return RouteDecision(pick.id, TYPE, "turn", {"candidates": float(len(ordered))})


def build(params: Mapping[str, Any], rng: random.Random) -> RoundRobin:
    if params:
        raise ValueError(f"routing.params.{TYPE}: takes no parameters, got {sorted(params)}")
    return RoundRobin()
